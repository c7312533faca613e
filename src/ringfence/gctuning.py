"""How the ``ringfence serve`` process runs Python's garbage collector.

A full (oldest-generation) collection walks every object the collector tracks, with the
event loop stopped. Measured with 5,000 connected sockets (bench, `dm-sqlite`), those
pauses reached 370 ms, and a ring or a DM that arrived during one waited that long:
the 0.3 to 0.5 s ring stalls of docs/benchmarks.md. Two changes bound them:

- What start-up builds (modules, the app, SQLAlchemy's and pydantic's caches: some
  180,000 objects, 60 ms of every full collection) lives as long as the process. It is
  moved out of the collector's sight with :func:`gc.freeze` once, after a collection
  that clears start-up's own garbage (frozen garbage would never be freed).
- The youngest generation is collected after 20,000 new objects instead of 700. A
  request's objects then mostly die before any collection sees them, instead of being
  promoted into the older generations that full collections walk, so full collections
  come far less often; a young collection of 20,000 objects takes a few milliseconds.

Only the server process does this: a program that builds many apps (the test suite)
would freeze each one's garbage for good.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 20_000


def tune_for_server() -> None:
    """Freeze what start-up built and widen the youngest generation. Call once, after
    the app is built and before it serves."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)

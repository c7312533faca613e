"""The server process's collector settings (ringfence.gctuning), checked in a fresh
interpreter: freezing the test process's own objects would keep them for good."""

from __future__ import annotations

import json
import subprocess
import sys

from ringfence.gctuning import YOUNG_GENERATION_THRESHOLD

PROBE = """
import gc, json, weakref
from ringfence.app import create_app
from ringfence.gctuning import tune_for_server
# Start-up garbage: a reference cycle nobody holds any more.
class Node: pass
node = Node(); node.itself = node; ref = weakref.ref(node); del node
before = gc.get_threshold()
tune_for_server()
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
    "threshold": gc.get_threshold(),
    "before": before,
    "cycle_freed": ref() is None,
}))
"""


def test_start_up_is_frozen_after_its_garbage_is_collected_and_young_collections_widen() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True, timeout=120
    )
    result = json.loads(out.stdout)
    # The app's modules are out of the collector's sight: a full collection walks none.
    assert result["frozen"] > 50_000
    assert result["tracked"] < 100
    assert result["threshold"] == [YOUNG_GENERATION_THRESHOLD, *result["before"][1:]]
    # Frozen garbage would never be freed: the collection before freezing freed it.
    assert result["cycle_freed"]

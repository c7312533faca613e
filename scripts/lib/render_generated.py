"""Write the clients' files that are generated from the server's Python code.

- ``src/ringfence/web/verification/words.json``: the verification word table
  (:mod:`ringfence.calls.words`);
- ``src/ringfence/web/callstates.js``: the client call-state table
  (:mod:`ringfence.wire.call_states`);
- ``src/ringfence/web/callframes.js``: JSDoc types of every call frame
  (:mod:`ringfence.wire.calls`);
- ``src/ringfence/web/apitypes.js``: JSDoc types of the HTTP responses and socket
  events (:mod:`ringfence.wire.models`, ``responses``, ``events``);
- ``src/ringfence/client/apitypes.py``: the same responses as TypedDicts for the
  Python client.

Run after changing the source: `.venv/bin/python scripts/lib/render_generated.py`.
tests/unit/test_generated.py fails while a generated file and its source disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from ringfence.generated import GENERATED  # noqa: E402

for relative, render in GENERATED.items():
    path = ROOT / "src" / "ringfence" / relative
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")

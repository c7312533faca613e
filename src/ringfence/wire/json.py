"""The one JSON format for everything sent over a socket: compact, UTF-8 as is.

``encode`` writes plain values (dicts). Models on the hot path (stored events, acks,
other frames) are serialised by pydantic's ``model_dump_json``, which writes the same
bytes as ``encode(model.model_dump(mode="json"))`` without building the dict first;
``tests/unit/wire/test_json.py`` holds the two to that.
"""

from __future__ import annotations

import json
from typing import Any


def encode(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)

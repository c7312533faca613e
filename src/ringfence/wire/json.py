"""The one JSON encoder for everything sent over a socket: compact, UTF-8 as is."""

from __future__ import annotations

import json
from typing import Any


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)

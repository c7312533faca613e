"""The browser client's files that are generated from the Python code, so that the two
clients share one source: each entry renders one file under ``ringfence/web/``.

``scripts/lib/render_web_files.py`` writes them; tests/unit/test_web_files.py checks
that the committed files are current.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ringfence.calls.words import VERSION, WORDS


def verification_words() -> str:
    return json.dumps({"version": VERSION, "words": list(WORDS)}, indent=2) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "verification/words.json": verification_words,
}

"""The device description kept for each session: short, plain, and never the header."""

from __future__ import annotations

import pytest

from ringfence.services.devices import MAX_LENGTH, UNKNOWN, describe_user_agent

CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)
CHROME_IOS = (
    "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15"
)


@pytest.mark.parametrize(
    ("user_agent", "described"),
    [
        (CHROME_LINUX, "Chrome on Linux"),
        (FIREFOX_ANDROID, "Firefox on Android"),
        (SAFARI_IPHONE, "Safari on iPhone"),
        (EDGE_WINDOWS, "Edge on Windows"),
        (CHROME_IOS, "Chrome on iPad"),
        (SAFARI_MAC, "Safari on macOS"),
        ("ringfence-client/0.1.0", "Ringfence terminal client 0.1.0"),
        ("python-httpx/0.28.1", "A script or API client"),
        ("curl/8.5.0", "A script or API client"),
        (None, UNKNOWN),
        ("", UNKNOWN),
        ("<script>alert(1)</script>", UNKNOWN),
        ("\x1b[31mEvil\x1b[0m Linux", "A browser on Linux"),
    ],
)
def test_user_agents_become_a_short_plain_description(
    user_agent: str | None, described: str
) -> None:
    assert describe_user_agent(user_agent) == described


def test_whatever_is_sent_the_description_is_short_plain_ascii() -> None:
    for hostile in ("x" * 100_000, "ringfence-client/" + "9" * 500, "\u202e" * 50 + "Firefox/1"):
        text = describe_user_agent(hostile)
        assert len(text) <= MAX_LENGTH
        assert text.isascii()
        assert text.isprintable()

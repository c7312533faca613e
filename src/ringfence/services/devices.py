"""A short, human description of the device behind a sign-in ("Firefox on Android"),
from its User-Agent header, for the account page's list of sessions.

Only this description is kept: never the header itself, and never an IP address.
Anything unrecognised is "Unknown device"; the result is plain ASCII and short, so
whatever a client sends cannot put markup, control characters or a long string on
anyone's screen.
"""

from __future__ import annotations

import re

UNKNOWN = "Unknown device"
MAX_LENGTH = 64

# Order matters: Edge and Opera say "Chrome" too, Chrome says "Safari", and
# Chromium-based browsers on iOS say "Safari".
_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(e|A|iOS)?/")),
    ("Opera", re.compile(r"\bOPR/")),
    ("Firefox", re.compile(r"\b(Firefox|FxiOS)/")),
    ("Chrome", re.compile(r"\b(Chrome|CriOS|HeadlessChrome)/")),
    ("Chromium", re.compile(r"\bChromium/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"\bAndroid\b")),
    ("iPhone", re.compile(r"\biPhone\b")),
    ("iPad", re.compile(r"\biPad\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)
_RINGFENCE_CLIENT = re.compile(r"^ringfence-client/([0-9][0-9A-Za-z.+-]{0,15})\b")


def describe_user_agent(user_agent: str | None) -> str:
    """ "Chrome on Linux", "Ringfence terminal client 0.1.0", or "Unknown device"."""
    if not user_agent:
        return UNKNOWN
    text = user_agent[:512]
    client = _RINGFENCE_CLIENT.match(text)
    if client is not None:
        return f"Ringfence terminal client {client.group(1)}"
    browser = next((name for name, pattern in _BROWSERS if pattern.search(text)), None)
    system = next((name for name, pattern in _SYSTEMS if pattern.search(text)), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or f"A browser on {system}"
    if text.startswith("python-httpx/") or text.startswith("curl/"):
        return "A script or API client"
    return UNKNOWN

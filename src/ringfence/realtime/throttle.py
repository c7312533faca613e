"""Per-connection flood control for client frames: a token bucket.

A client may send ``burst`` frames at once and ``rate`` per second after that. Frames
beyond it are refused (the client gets an error event); a client that keeps flooding
is disconnected, so one socket cannot keep a core busy parsing its frames.
"""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    def __init__(self, *, rate: float, burst: int, now: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._now = now
        self._at = now()
        self.refused_in_a_row = 0

    def take(self) -> bool:
        """Spend one token; False (and a count of refusals in a row) when none is left."""
        now = self._now()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False

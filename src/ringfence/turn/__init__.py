"""TURN relaying: short-lived credentials and the coturn relay behind them."""

from ringfence.turn.coturn_config import CoturnOptions, render
from ringfence.turn.credentials import (
    IceServer,
    TurnCredentialIssuer,
    generate_secret,
    load_secret,
)
from ringfence.turn.supervisor import CoturnStartError, CoturnSupervisor, TurnUnavailable

__all__ = [
    "CoturnOptions",
    "CoturnStartError",
    "CoturnSupervisor",
    "IceServer",
    "TurnCredentialIssuer",
    "TurnUnavailable",
    "generate_secret",
    "load_secret",
    "render",
]

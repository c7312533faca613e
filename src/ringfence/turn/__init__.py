"""TURN relaying: short-lived credentials and the coturn relay behind them."""

from ringfence.turn.coturn_config import CoturnOptions, render
from ringfence.turn.credentials import (
    IceServer,
    TurnCredentialIssuer,
    generate_secret,
    load_secret,
)
from ringfence.turn.probe import RelayCheckFailed
from ringfence.turn.supervisor import (
    CoturnStartError,
    CoturnSupervisor,
    RelayNotVerified,
    TurnUnavailable,
)

__all__ = [
    "CoturnOptions",
    "CoturnStartError",
    "CoturnSupervisor",
    "IceServer",
    "RelayCheckFailed",
    "RelayNotVerified",
    "TurnCredentialIssuer",
    "TurnUnavailable",
    "generate_secret",
    "load_secret",
    "render",
]

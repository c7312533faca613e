"""The set of services one server instance runs, built once in app.py."""

from __future__ import annotations

from dataclasses import dataclass

from ringfence.backends import Backend
from ringfence.clock import Clock
from ringfence.config import Settings
from ringfence.realtime.bus import Bus
from ringfence.realtime.hub import Hub
from ringfence.services.accounts import Accounts
from ringfence.services.calls import Calls
from ringfence.services.export import AccountExport
from ringfence.services.messaging import Messaging
from ringfence.services.moderation import Moderation
from ringfence.services.push import Push
from ringfence.services.settings import SettingsService
from ringfence.services.social import Social
from ringfence.services.sockets import Sockets
from ringfence.services.stream import EventStream
from ringfence.storage.database import Database
from ringfence.turn.supervisor import CoturnSupervisor


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    clock: Clock
    db: Database
    bus: Bus
    hub: Hub
    stream: EventStream
    accounts: Accounts
    social: Social
    messaging: Messaging
    export: AccountExport
    user_settings: SettingsService
    moderation: Moderation
    calls: Calls
    sockets: Sockets
    push: Push
    turn_supervisor: CoturnSupervisor | None
    backend: Backend  # owns bus and the ephemeral state; closed last but the database

"""An async client for Ringfence's HTTP API.

One method per route, returning the server's JSON, typed with ``TypedDict``s generated
from the server's own models (``client/apitypes.py``, from ``ringfence.wire``), so
callers get checked field names with nothing to keep in sync by hand. Every non-2xx
answer becomes a :class:`RingfenceError` carrying the server's own error code.

The session token travels only in the ``Authorization`` header: never in a URL (where
access logs and proxies would keep it) and never in a ``repr`` or log line.
"""

from __future__ import annotations

import asyncio
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, cast
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from ringfence import __version__

# The server's response shapes, generated from its models (ringfence/wire).
from ringfence.client.apitypes import (
    CallHistoryItem,
    CallRecord,
    Conversation,
    Message,
    ReportReceipt,
    Session,
    SessionInfo,
    User,
    UserSettings,
)

if TYPE_CHECKING:
    from ringfence.client.events import EventStream

USER_AGENT = f"ringfence-client/{__version__}"

__all__ = [
    "CallHistoryItem",
    "CallRecord",
    "Conversation",
    "IceServer",
    "Media",
    "Message",
    "MessageNotSent",
    "ReportReceipt",
    "RingfenceClient",
    "RingfenceError",
    "Session",
    "SessionInfo",
    "StartedCall",
    "User",
    "UserSettings",
    "events_url",
    "normalize_base_url",
]

Media = Literal["audio", "video"]


# Not generated: these mirror the call frames' ICE servers (ringfence.wire.calls), where
# a STUN server has no username or credential.
class IceServer(TypedDict):
    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


class StartedCall(TypedDict):
    call_id: str
    ice_servers: list[IceServer]
    ice_transport_policy: Literal["relay", "all"]
    ring_timeout_s: int


class RingfenceError(Exception):
    """The server refused a request. ``code`` is its machine-readable error
    (``call_not_allowed``, ``rate_limited``...), ``detail`` its human-readable text."""

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s

    @classmethod
    def from_response(cls, response: httpx.Response) -> RingfenceError:
        code, detail = f"http_{response.status_code}", response.reason_phrase or "error"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = str(body.get("error") or code)
            detail = str(body.get("detail") or detail)
        retry_after: float | None = None
        header = response.headers.get("Retry-After")
        if header is not None:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        return cls(response.status_code, code, detail, retry_after_s=retry_after)


class MessageNotSent(Exception):
    """A DM the event stream could not carry: it was not connected, or it dropped or
    stayed silent before the server answered. The server may have stored it; sending
    the same txn_id again (over HTTP) returns that message instead of a second one."""


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"server URL must be http:// or https://, not {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError("server URL must not have a query or fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def normalize_base_url(base_url: str) -> str:
    """The server URL as the client uses it (no trailing slash), so two spellings of one
    server compare equal; raises ``ValueError`` for anything but http(s)://host[/path]."""
    return _check_base_url(base_url)


def events_url(base_url: str) -> str:
    """The WebSocket URL of the event stream: ws:// for http://, wss:// for https://."""
    parts = urlsplit(_check_base_url(base_url))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/api/v1/events", "", ""))


def _seg(value: str) -> str:
    """One path segment: a username can never reach another route."""
    return quote(value, safe="")


class RingfenceClient:
    """``async with RingfenceClient("https://chat.example.org", token) as rf: ...``

    ``register`` and ``login`` store the token they receive; ``logout`` forgets it.
    Set ``events`` to this account's open :class:`EventStream` and messages go over
    it while it is connected: one frame, no HTTP request each.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        self._token = token
        self.events: EventStream | None = None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            # The server keeps only "Ringfence terminal client <version>" from this,
            # for the account page's list of sessions.
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=False,  # a redirect must not carry the token elsewhere
        )

    def __repr__(self) -> str:
        state = "authenticated" if self._token else "anonymous"
        return f"<RingfenceClient {self.base_url} {state}>"

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value

    @property
    def events_url(self) -> str:
        return events_url(self.base_url)

    async def __aenter__(self) -> RingfenceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        headers = {}
        if auth:
            if self._token is None:
                raise RingfenceError(401, "unauthorized", "not signed in (no token)")
            headers["Authorization"] = f"Bearer {self._token}"
        response = await self._http.request(method, path, json=json, params=params, headers=headers)
        if response.is_error or response.status_code >= 300:
            raise RingfenceError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # --- accounts -----------------------------------------------------------------

    async def register(
        self, username: str, password: str, display_name: str | None = None
    ) -> Session:
        body: dict[str, Any] = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        session = cast(
            Session, await self._request("POST", "/api/v1/accounts", json=body, auth=False)
        )
        self._token = session["token"]
        return session

    async def login(self, username: str, password: str) -> Session:
        body = {"username": username, "password": password}
        session = cast(
            Session, await self._request("POST", "/api/v1/sessions", json=body, auth=False)
        )
        self._token = session["token"]
        return session

    async def logout(self) -> None:
        await self._request("DELETE", "/api/v1/sessions/current")
        self._token = None

    async def me(self) -> dict[str, Any]:
        """``{"user": User, "settings": UserSettings}``."""
        return cast(dict[str, Any], await self._request("GET", "/api/v1/me"))

    async def rename(self, display_name: str) -> User:
        """Change my display name; everyone I talk with sees the new one at once."""
        data = await self._request("PATCH", "/api/v1/me", json={"display_name": display_name})
        return cast(User, data["user"])

    async def change_password(self, current: str, new: str) -> None:
        """Change my password; every other session of mine is signed out."""
        body = {"current_password": current, "new_password": new}
        await self._request("POST", "/api/v1/me/password", json=body)

    async def delete_account(self, password: str) -> None:
        """Delete my account for good (the password confirms it; a wrong one is 403
        ``wrong_password``). Every session of mine ends, this one too: the client
        holds no token afterwards. Messages I sent stay with the people who got them,
        shown as from "Deleted account"."""
        await self._request("DELETE", "/api/v1/me", json={"password": password})
        self._token = None

    async def export(self) -> dict[str, Any]:
        """My account, settings, follows, blocks and messages, as the server's export
        document (``format: ringfence-export/1``). A few a day."""
        return cast(dict[str, Any], await self._request("GET", "/api/v1/me/export"))

    async def sessions(self) -> list[SessionInfo]:
        data = await self._request("GET", "/api/v1/me/sessions")
        return cast(list[SessionInfo], data["sessions"])

    async def end_session(self, session_id: int) -> None:
        """Sign that session out at once (its sockets close too)."""
        await self._request("DELETE", f"/api/v1/me/sessions/{int(session_id)}")

    async def user(self, username: str) -> User:
        data = await self._request("GET", f"/api/v1/users/{_seg(username)}")
        return cast(User, data["user"])

    async def update_settings(self, **fields: Any) -> UserSettings:
        """Change only the named settings (``calls_enabled``, ``call_audience``,
        ``direct_connections``, ``silence_unknown_callers``...). The server validates
        them and names the field it refuses."""
        return await self.patch_settings(fields)

    async def patch_settings(self, changes: dict[str, Any]) -> UserSettings:
        """:meth:`update_settings` for keys that come from elsewhere (a command line):
        any key at all is sent, for the server to accept or refuse by name."""
        data = await self._request("PATCH", "/api/v1/me/settings", json=changes)
        return cast(UserSettings, data["settings"])

    # --- social graph -------------------------------------------------------------

    async def follow(self, username: str) -> None:
        await self._request("PUT", f"/api/v1/me/following/{_seg(username)}")

    async def unfollow(self, username: str) -> None:
        await self._request("DELETE", f"/api/v1/me/following/{_seg(username)}")

    async def block(self, username: str) -> None:
        await self._request("PUT", f"/api/v1/me/blocked/{_seg(username)}")

    async def unblock(self, username: str) -> None:
        await self._request("DELETE", f"/api/v1/me/blocked/{_seg(username)}")

    async def following(self) -> list[User]:
        return cast(list[User], (await self._request("GET", "/api/v1/me/following"))["users"])

    async def followers(self) -> list[User]:
        return cast(list[User], (await self._request("GET", "/api/v1/me/followers"))["users"])

    async def blocked(self) -> list[User]:
        return cast(list[User], (await self._request("GET", "/api/v1/me/blocked"))["users"])

    # --- messages -----------------------------------------------------------------

    async def conversations(self, limit: int = 200) -> list[Conversation]:
        data = await self._request("GET", "/api/v1/conversations", params={"limit": limit})
        return cast(list[Conversation], data["conversations"])

    async def send_message(
        self, username: str, text: str, txn_id: str | None = None, *, attempts: int = 3
    ) -> Message:
        """Send a DM. A lost connection is retried with the same ``txn_id``, which the
        server uses to return the original message instead of storing a duplicate.

        Over ``events`` while it is connected; over HTTP otherwise, and when the stream
        drops before the server answers (the same txn_id: still one message)."""
        txn_id = txn_id or uuid.uuid4().hex
        stream = self.events
        if stream is not None and stream.connected:
            try:
                return await stream.send_message(username, text, txn_id)
            except MessageNotSent:
                pass  # the same txn_id over HTTP settles it
        body = {"text": text, "txn_id": txn_id}
        path = f"/api/v1/conversations/{_seg(username)}/messages"
        attempt = 1
        while True:
            try:
                data = await self._request("POST", path, json=body)
            except httpx.TransportError:
                if attempt >= attempts:
                    raise
                await asyncio.sleep(0.25 * 2**attempt)
                attempt += 1
            else:
                return cast(Message, data["message"])

    async def history(
        self, username: str, before: int | None = None, limit: int = 50
    ) -> list[Message]:
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        data = await self._request(
            "GET", f"/api/v1/conversations/{_seg(username)}/messages", params=params
        )
        return cast(list[Message], data["messages"])

    async def mark_read(self, username: str, up_to: int) -> None:
        """USERNAME's messages up to message id ``up_to`` are read, on all my devices
        (and they are told, where we both share read receipts)."""
        await self._request(
            "POST", f"/api/v1/conversations/{_seg(username)}/read", json={"up_to": up_to}
        )

    async def mark_delivered(self, username: str, up_to: int) -> None:
        """USERNAME's messages up to message id ``up_to`` reached this device (they
        see "Delivered", where we both share read receipts)."""
        await self._request(
            "POST", f"/api/v1/conversations/{_seg(username)}/delivered", json={"up_to": up_to}
        )

    async def accept(self, username: str) -> Conversation:
        data = await self._request("POST", f"/api/v1/conversations/{_seg(username)}/accept")
        return cast(Conversation, data["conversation"])

    async def decline(self, username: str) -> Conversation:
        data = await self._request("POST", f"/api/v1/conversations/{_seg(username)}/decline")
        return cast(Conversation, data["conversation"])

    # --- safety -------------------------------------------------------------------

    async def report(self, username: str, reason: str = "") -> ReportReceipt:
        """Report a user to this server's admins (the reported user is not told)."""
        data = await self._request(
            "POST", "/api/v1/reports", json={"username": username, "reason": reason}
        )
        return cast(ReportReceipt, data["report"])

    # --- calls --------------------------------------------------------------------

    async def start_call(self, username: str, media: Media) -> StartedCall:
        """Ask the server for a call id and the ICE configuration to use. Any refusal is
        a 403 ``call_not_allowed`` (deliberately uninformative); 429 is rate limiting."""
        data = await self._request("POST", "/api/v1/calls", json={"to": username, "media": media})
        return cast(StartedCall, data)

    async def call_history(
        self, before: int | None = None, limit: int = 50
    ) -> list[CallHistoryItem]:
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        data = await self._request("GET", "/api/v1/calls", params=params)
        return cast(list[CallHistoryItem], data["calls"])

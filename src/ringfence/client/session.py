"""Where the terminal client keeps who you are signed in as: one small file per profile.

``$XDG_CONFIG_HOME/ringfence/sessions/<profile>.json`` (``~/.config`` when the variable
is unset or not absolute, as the XDG spec says) holds the server URL, the username and
the session token. The token is a password in all but name, so the file is written the
way ssh writes a private key: created 0600 in a 0700 directory, replaced atomically, and
refused when anyone but its owner can read or write it. The token itself never leaves
this module except towards the server it belongs to (see :func:`load`'s callers) and
never appears in a ``repr``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_PROFILE",
    "SessionFileError",
    "SessionStore",
    "StoredSession",
    "config_dir",
]

DEFAULT_PROFILE = "default"
# A file name on every system, and never a path: no separators, no leading dot.
_PROFILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class SessionFileError(Exception):
    """The stored session cannot be used: unsafe permissions, unreadable, or garbled.
    ``message`` says what to do about it, in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class StoredSession:
    server: str
    username: str
    token: str = field(repr=False)


def config_dir(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/ringfence``, or ``~/.config/ringfence``."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "ringfence"


def check_profile(name: str) -> str:
    if not _PROFILE_RE.fullmatch(name):
        raise ValueError(f"profile names are 1-64 letters, digits, '_', '.' or '-' (not {name!r})")
    return name


def _exposed(mode: int) -> str | None:
    """Who besides the owner may touch a file of this mode, or None if nobody."""
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return "other users can read it"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "other users can change it"
    return None


class SessionStore:
    """The session files under one directory (``config_dir()`` by default)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = config_dir() if root is None else root

    def path(self, profile: str) -> Path:
        return self.root / "sessions" / f"{check_profile(profile)}.json"

    def load(self, profile: str, *, allow_exposed: bool = False) -> StoredSession | None:
        """The profile's session, or None if it has none. Raises
        :class:`SessionFileError` for a file that others may read or change (unless
        ``allow_exposed``: logging out revokes a token that may have leaked, which is
        the one safe thing to do with it), that is not ours, or that is garbled."""
        path = self.path(profile)
        try:
            # O_NOFOLLOW: the file itself is checked, not whatever a link points at.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SessionFileError(f"cannot read {path}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if os.name == "posix" and not allow_exposed:
                if info.st_uid != os.getuid():
                    raise SessionFileError(f"refusing to use {path}: it belongs to another user")
                why = _exposed(info.st_mode)
                if why is not None:
                    raise SessionFileError(
                        f"refusing to use {path}: {why} (mode {stat.S_IMODE(info.st_mode):04o});"
                        f" run: chmod 600 {path}, or sign out with: ringfence logout"
                    )
            raw = file.read(64 * 1024)
        try:
            data = json.loads(raw)
            session = StoredSession(
                server=str(data["server"]), username=str(data["username"]), token=data["token"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionFileError(
                f"{path} is not a ringfence session file; delete it and sign in again"
            ) from exc
        if not isinstance(session.token, str) or not session.token:
            raise SessionFileError(f"{path} holds no token; delete it and sign in again")
        return session

    def save(self, profile: str, session: StoredSession) -> Path:
        """Write the profile's session: created 0600 from the start (never widened and
        then narrowed), then moved into place so a reader never sees half a file."""
        path = self.path(profile)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps(
            {"server": session.server, "username": session.username, "token": session.token},
            indent=2,
        ).encode()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # a leftover of a crashed write by this same pid
        fd = os.open(tmp, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(body + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return path

    def delete(self, profile: str) -> bool:
        """Forget the profile's session; False if there was none."""
        try:
            self.path(profile).unlink()
        except FileNotFoundError:
            return False
        return True

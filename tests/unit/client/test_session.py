"""The terminal client's session store: where the file is, who may read it, and that
the token never shows."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ringfence.client.session import (
    SessionFileError,
    SessionStore,
    StoredSession,
    check_profile,
    config_dir,
)

SESSION = StoredSession("https://chat.example.org", "alice", "rf_secret-token-1234567890")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_config_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_dir({"XDG_CONFIG_HOME": "/etc/xdg-me"}) == Path("/etc/xdg-me/ringfence")
    # Unset, empty or relative: ~/.config, as the XDG spec says.
    for env in ({}, {"XDG_CONFIG_HOME": ""}, {"XDG_CONFIG_HOME": "relative/dir"}):
        assert config_dir(env) == tmp_path / ".config" / "ringfence"


def test_saved_private_from_the_start_and_read_back(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "ringfence")
    old = os.umask(0o000)  # even a permissive umask cannot widen it
    try:
        path = store.save("default", SESSION)
    finally:
        os.umask(old)
    assert path == tmp_path / "ringfence" / "sessions" / "default.json"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert store.load("default") == SESSION
    assert store.load("other") is None
    assert [p.name for p in path.parent.iterdir()] == ["default.json"]  # no temp file left


def test_the_token_is_not_in_the_repr() -> None:
    assert SESSION.token not in repr(SESSION)
    assert "alice" in repr(SESSION)


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o660, 0o622, 0o602])
def test_a_file_others_can_read_or_change_is_refused(tmp_path: Path, loose: int) -> None:
    store = SessionStore(tmp_path)
    path = store.save("default", SESSION)
    path.chmod(loose)
    with pytest.raises(SessionFileError) as refused:
        store.load("default")
    assert "refusing to use" in refused.value.message
    assert "chmod 600" in refused.value.message
    assert SESSION.token not in refused.value.message
    # Logging out may still read it: revoking a token that may have leaked is safe.
    assert store.load("default", allow_exposed=True) == SESSION


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    real = store.save("real", SESSION)
    store.path("linked").symlink_to(real)
    with pytest.raises(SessionFileError):
        store.load("linked")


def test_a_garbled_file_says_what_to_do(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    path = store.save("default", SESSION)
    path.write_text("{not json")
    with pytest.raises(SessionFileError) as garbled:
        store.load("default")
    assert "not a ringfence session file" in garbled.value.message
    path.write_text('{"server": "x", "username": "a", "token": ""}')
    with pytest.raises(SessionFileError):
        store.load("default")


def test_profiles_are_names_never_paths(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    for good in ("default", "work", "alice.example-2", "_x"):
        assert check_profile(good) == good
    for bad in ("", "../x", "a/b", ".hidden", "a b", "x" * 65, "é"):
        with pytest.raises(ValueError, match="profile names"):
            store.path(bad)


def test_delete_forgets_one_profile(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.save("default", SESSION)
    store.save("work", SESSION)
    assert store.delete("work") is True
    assert store.delete("work") is False
    assert store.load("work") is None
    assert store.load("default") == SESSION


def test_saving_replaces_a_previous_session(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.save("default", SESSION)
    newer = StoredSession("https://other.example", "bob", "rf_another-token-0987654321")
    path = store.save("default", newer)
    assert store.load("default") == newer
    assert mode(path) == 0o600

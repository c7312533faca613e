"""Typed settings: flags > environment > TOML file > defaults, and loud failures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ringfence.cli import app as cli_app
from ringfence.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RINGFENCE_* variable of the test run (or the developer's shell) leaks in."""
    for key in list(os.environ):
        if key.startswith("RINGFENCE_"):
            monkeypatch.delenv(key)


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.data_dir == Path("ringfence-data")
    assert settings.database_url is None
    assert settings.log_level == "info"
    assert settings.ws_send_queue == 256
    assert settings.ws_auth_timeout_s == 10.0
    assert settings.ws_max_frame_bytes == 64 * 1024


def test_default_database_is_sqlite_inside_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path / "data"})
    expected = (tmp_path / "data" / "ringfence.db").resolve()
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{expected}"


def test_precedence_flags_over_env_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_toml(
        tmp_path / "rf.toml", 'port = 1111\nhost = "10.0.0.1"\nlog_level = "error"\n'
    )
    # File over defaults.
    assert load_settings(config_file=config).port == 1111
    # Environment over file, key by key: the file's other settings still apply.
    monkeypatch.setenv("RINGFENCE_PORT", "2222")
    from_env = load_settings(config_file=config)
    assert (from_env.port, from_env.host, from_env.log_level) == (2222, "10.0.0.1", "error")
    # Flags over both; a flag left as None does not mask anything.
    flagged = load_settings({"port": 3333, "host": None, "log_level": "debug"}, config)
    assert (flagged.port, flagged.host, flagged.log_level) == (3333, "10.0.0.1", "debug")


def test_config_file_named_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_toml(tmp_path / "rf.toml", "ws_send_queue = 64\n")
    monkeypatch.setenv("RINGFENCE_CONFIG", str(config))
    assert load_settings().ws_send_queue == 64


def test_environment_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGFENCE_PORT", "9000")
    monkeypatch.setenv("RINGFENCE_WS_AUTH_TIMEOUT_S", "2.5")
    monkeypatch.setenv("RINGFENCE_PUBLIC_URLS", "https://chat.example.org, http://10.0.0.2:8080")
    settings = load_settings()
    assert settings.port == 9000
    assert settings.ws_auth_timeout_s == 2.5
    assert settings.public_urls == ["https://chat.example.org", "http://10.0.0.2:8080"]


def test_plain_postgresql_url_in_environment_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGFENCE_DATABASE_URL", "postgresql://rf@db.internal/ringfence")
    settings = load_settings()
    assert settings.database_url == "postgresql+asyncpg://rf@db.internal/ringfence"
    assert settings.effective_database_url == settings.database_url


BAD_VALUES: list[tuple[str, Any]] = [
    ("port", "notaport"),
    ("port", 70000),
    ("log_level", "loud"),
    ("database_url", "mysql://rf@db/ringfence"),
    ("public_urls", "ftp://chat.example.org"),
    ("public_urls", "https://chat.example.org/path"),
    ("ws_send_queue", 1),
    ("ws_auth_timeout_s", 0),
    ("ws_max_frame_bytes", 10),
    ("password_hash_concurrency", 0),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_flag_names_the_setting(name: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    message = str(info.value)
    assert f"invalid setting {name}" in message
    assert f"RINGFENCE_{name.upper()}" in message


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_environment_value_names_the_setting(
    name: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"RINGFENCE_{name.upper()}", str(value))
    with pytest.raises(ConfigError, match=f"invalid setting {name} "):
        load_settings()


def test_bad_file_value_names_the_setting(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "rf.toml", 'port = "eighty"\n')
    with pytest.raises(ConfigError, match="invalid setting port "):
        load_settings(config_file=config)


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "rf.toml", "port = 1\nprot = 2\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*prot"):
        load_settings(config_file=config)


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.toml")


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "rf.toml", "port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=config)


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid setting colour"):
        load_settings({"colour": "blue"})


def test_settings_object_refuses_bad_values_directly() -> None:
    with pytest.raises(ValueError, match="port"):
        Settings(port=-1)


def test_serve_refuses_a_bad_environment_value_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RINGFENCE_PORT", "notaport")
    result = CliRunner().invoke(cli_app, ["serve"])
    assert result.exit_code == 2
    assert "RINGFENCE_PORT" in result.output
    assert "invalid setting port" in result.output


def test_serve_refuses_a_bad_database_url_flag_with_its_name() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--database-url", "mysql://rf@db/ringfence"])
    assert result.exit_code == 2
    assert "invalid setting database_url" in result.output


def test_a_plain_postgresql_url_is_accepted_from_any_source(tmp_path: Path) -> None:
    for url in ("postgresql://u@db.example/rf", "postgres://u@db.example/rf"):
        settings = load_settings({"database_url": url, "data_dir": tmp_path})
        assert settings.database_url == "postgresql+asyncpg://u@db.example/rf"


def test_a_public_url_with_a_trailing_slash_is_an_origin(tmp_path: Path) -> None:
    settings = load_settings({"public_urls": ["https://chat.example.org/"]})
    assert settings.public_urls == ["https://chat.example.org"]
    with pytest.raises(ConfigError, match="public_urls"):
        load_settings({"public_urls": ["https://chat.example.org/app"]})


def test_errors_name_only_flags_that_exist() -> None:
    with pytest.raises(ConfigError) as bad_queue:
        load_settings({"ws_send_queue": 1})
    assert "RINGFENCE_WS_SEND_QUEUE" in str(bad_queue.value)
    assert "--ws-send-queue" not in str(bad_queue.value)
    with pytest.raises(ConfigError) as bad_urls:
        load_settings({"public_urls": ["ftp://x"]})
    assert "--public-url" in str(bad_urls.value)
    assert "--public-urls" not in str(bad_urls.value)


def test_the_embedded_relay_listens_where_the_server_does() -> None:
    assert load_settings().turn_listen_ip == "127.0.0.1"
    assert load_settings({"host": "localhost"}).turn_listen_ip == "127.0.0.1"
    assert load_settings({"host": "192.168.1.20"}).turn_listen_ip == "192.168.1.20"
    chosen = load_settings({"host": "192.168.1.20", "turn_listen_ip": "10.8.0.1"})
    assert chosen.turn_listen_ip == "10.8.0.1"


def test_listening_everywhere_needs_the_relay_address_said() -> None:
    with pytest.raises(ConfigError, match="turn_listen_ip"):
        load_settings({"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="turn_listen_ip"):
        load_settings({"host": "chat.example.org"})
    relayed = load_settings({"host": "0.0.0.0", "turn_listen_ip": "192.168.1.20"})
    assert relayed.turn_listen_ip == "192.168.1.20"


def test_tls_settings_are_checked_together(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_settings({"tls_cert": cert})
    with pytest.raises(ConfigError, match="is not a readable file"):
        load_settings({"tls_cert": cert, "tls_key": tmp_path / "missing.pem"})
    with pytest.raises(ConfigError, match="exclude each other"):
        load_settings({"tls_cert": cert, "tls_key": cert, "tls_self_signed": True})
    with pytest.raises(ConfigError, match="a port of its own"):
        load_settings({"tls_self_signed": True, "turn_port": 5349})
    served = load_settings({"tls_cert": cert, "tls_key": cert})
    assert served.tls
    assert served.scheme == "https"
    assert served.tls_cert == cert.resolve()


def test_turn_urls_name_the_certificates_host_by_default(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    assert load_settings().turn_url_host is None
    named = load_settings(
        {"tls_cert": cert, "tls_key": cert, "public_urls": ["https://Chat.Example.org"]}
    )
    assert named.turn_url_host == "chat.example.org"
    chosen = load_settings({"public_urls": ["https://chat.example.org"], "turn_host": "turn.x.org"})
    assert chosen.turn_url_host == "turn.x.org"
    with pytest.raises(ConfigError, match="turn_host"):
        load_settings({"turn_host": "not a host"})


def test_serve_names_a_bad_certificate_in_one_line(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    result = CliRunner().invoke(
        cli_app,
        [
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(cert),
        ],
    )
    assert result.exit_code == 2
    assert "tls_cert / tls_key" in result.output
    assert "Traceback" not in result.output

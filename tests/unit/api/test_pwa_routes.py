"""The installable app's files: the service worker, the manifest, the icons and
/favicon.ico, with their content types and headers (issue 11, "Installable app")."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from ringfence.api import web
from tests.conftest import Api

ICONS = web.WEB_ROOT / "icons"


def csp_directives(header: str) -> dict[str, str]:
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in header.split("; ")}


async def test_service_worker_is_served_from_the_root_as_javascript_never_cached(
    api: Api,
) -> None:
    resp = await api.call("GET", "/sw.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/javascript; charset=utf-8"
    assert resp.headers["cache-control"] == "no-cache"
    # From / its default scope is the whole app: no Service-Worker-Allowed needed.
    assert "service-worker-allowed" not in resp.headers
    # The security headers apply to it as to every response (they bind the worker too).
    directives = csp_directives(resp.headers["content-security-policy"])
    assert directives["connect-src"] == "'self'"
    head = await api.call("HEAD", "/sw.js")
    assert head.status_code == 200
    assert head.headers["cache-control"] == "no-cache"


async def test_service_worker_caches_a_versioned_shell_and_nothing_else(api: Api) -> None:
    body = (await api.call("GET", "/sw.js")).text
    shell = web.load_shell()
    assert "__RINGFENCE_SHELL" not in body  # both placeholders filled in
    version = re.search(r'const SHELL_VERSION = "([0-9a-f]{16})";', body)
    assert version is not None
    assert version.group(1) == shell.version
    files = re.search(r"const SHELL_FILES = (\[.*?\]);", body)
    assert files is not None
    listed = json.loads(files.group(1))
    assert listed == list(shell.files)
    for path in ("/", "/app.js", "/pwa.js", "/offline.js", "/app.css", "/manifest.webmanifest"):
        assert path in listed
    assert "/sw.js" not in listed
    assert "/index.html" not in listed
    assert not [p for p in listed if p == "/api" or p.startswith("/api/")]
    # Every listed file answers 200, so the worker's install (addAll) can't fail.
    for path in listed:
        resp = await api.call("GET", path)
        assert resp.status_code == 200, path


def test_shell_version_changes_with_any_shell_file(tmp_path: Path) -> None:
    root = tmp_path / "web"
    (root / "views").mkdir(parents=True)
    (root / "sw.js").write_text((web.WEB_ROOT / "sw.js").read_text())
    (root / "index.html").write_text("<!doctype html>")
    (root / "views" / "a.js").write_text("export const a = 1;")
    (root / ".hidden").write_text("not served")
    first = web.load_shell(root)
    assert first.files == ("/", "/views/a.js")
    assert web.load_shell(root).version == first.version  # stable across starts
    (root / "views" / "a.js").write_text("export const a = 2;")
    second = web.load_shell(root)
    assert second.version != first.version
    assert second.version.encode() in second.worker
    assert first.version.encode() not in second.worker


def test_a_worker_without_its_placeholders_is_refused_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "sw.js").write_text("// no placeholders")
    with pytest.raises(RuntimeError, match="__RINGFENCE_SHELL_VERSION__"):
        web.load_shell(tmp_path)


async def test_manifest(api: Api) -> None:
    resp = await api.call("GET", "/manifest.webmanifest")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/manifest+json"
    manifest = resp.json()
    assert manifest["name"] == "Ringfence"
    assert manifest["short_name"]
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/"
    assert manifest["scope"] == "/"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["background_color"])
    sizes = {(i["sizes"], i.get("purpose", "any")) for i in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in manifest["icons"]:
        got = await api.call("GET", icon["src"])
        assert got.status_code == 200, icon["src"]
        assert got.headers["content-type"] == icon["type"], icon["src"]
        if icon["type"] == "image/png":
            width, height = struct.unpack(">II", got.content[16:24])
            assert f"{width}x{height}" == icon["sizes"], icon["src"]


async def test_favicon_is_a_real_ico(api: Api) -> None:
    resp = await api.call("GET", "/favicon.ico")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/x-icon"
    data = resp.content
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1)
    assert count >= 1
    for n in range(count):
        width, _, _, _, _, _, size, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * n : 22 + 16 * n]
        )
        image = data[offset : offset + size]
        assert image.startswith(b"\x89PNG\r\n\x1a\n")
        assert struct.unpack(">I", image[16:20])[0] == (width or 256)


async def test_unknown_icons_are_404(api: Api) -> None:
    for path in ("/icons/nope.png", "/icons/icon-1024.png", "/icons/", "/icons/../sw.js.map"):
        resp = await api.call("GET", path)
        assert resp.status_code == 404, path


async def test_api_paths_stay_the_apis(api: Api) -> None:
    # The new routes live inside the web mount, which never claims /api.
    resp = await api.call("GET", "/api/sw.js")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json"


async def test_csp_allows_the_manifest_and_worker_from_this_origin_only(api: Api) -> None:
    resp = await api.call("GET", "/")
    directives = csp_directives(resp.headers["content-security-policy"])
    assert directives["manifest-src"] == "'self'"
    assert directives["worker-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    html = resp.text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in html
    assert '<link rel="icon" href="/favicon.ico"' in html
    assert '<script type="module" src="/pwa.js"></script>' in html


def test_icon_script_output_is_committed() -> None:
    """scripts/make_icons.py draws the committed icons exactly (no build step)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[3] / "scripts" / "make_icons.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (ICONS / "favicon.ico").exists()

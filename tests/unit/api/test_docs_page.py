"""The docs page and everything it loads come from this server, under the usual CSP,
with no inline script (the CSP would block it). Rendering is checked in Chromium
(tests/browser/test_api_docs.py)."""

from __future__ import annotations

import re

from ringfence.api.web import CONTENT_SECURITY_POLICY
from tests.conftest import Api


async def test_the_docs_page_loads_only_its_own_files(api: Api) -> None:
    page = await api.call("GET", "/api/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    html = page.text
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None  # no inline script
    assert "style=" not in html
    assert "<style" not in html
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(loaded) == 4  # stylesheet, icon, Swagger UI, its start-up script
    assert [url for url in loaded if not url.startswith("/api/docs/")] == []
    for url in loaded:
        resp = await api.call("GET", url)
        assert resp.status_code == 200, url
        assert resp.content, url
    init = (await api.call("GET", "/api/docs/init.js")).text
    assert '"url": "/api/openapi.json"' in init
    assert '"validatorUrl": null' in init

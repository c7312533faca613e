"""``/api/docs`` renders the API in real Chromium under the same strict CSP as the rest,
from assets Ringfence serves itself: no request leaves the server's origin, and no
Content-Security-Policy violation is reported (the ``browsers`` fixture fails the test
on any CSP console message; the page's own violation events are checked here too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Request, expect

from ringfence.api.web import CONTENT_SECURITY_POLICY
from tests.browser.conftest import DESKTOP, Browsers
from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__rfViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__rfViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


async def test_the_api_docs_render_under_the_strict_csp(
    tmp_path: Path, database_url: str, browsers: Browsers
) -> None:
    async with LiveServer(make_settings(tmp_path, database_url)) as live:
        page = await browsers.page("reader", fake_devices=False, fake_ui=False, viewport=DESKTOP)
        await page.add_init_script(RECORD_VIOLATIONS)
        requested: list[str] = []

        def on_request(request: Request) -> None:
            requested.append(request.url)

        page.on("request", on_request)
        response = await page.goto(f"{live.url}/api/docs")
        assert response is not None
        assert response.status == 200
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

        # The API itself, read from /api/openapi.json and rendered by Swagger UI.
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Ringfence")
        sessions = page.locator(".opblock-summary-path", has_text="/api/v1/sessions").first
        await expect(sessions).to_be_visible()
        # Open one operation: its parameters and responses render too.
        await sessions.click()
        await expect(page.locator(".opblock-body .responses-wrapper").first).to_be_visible()
        await page.screenshot(path=str(tmp_path / "api-docs.png"))

        assert await page.evaluate("window.__rfViolations") == []
        assert requested, "the page made no requests"
        foreign = [url for url in requested if not url.startswith(live.url)]
        assert foreign == [], foreign

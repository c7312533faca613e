"""Validation errors in plain words (issue 12, §4.7): a refused sign-up says what to
do ("Use at least 10 characters"), never pydantic's "String should have at least 10
characters", and marks the field it is about."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from ringfence.services.accounts import PASSWORD_MIN
from tests.browser.conftest import Browsers, Server
from tests.browser.ui import console_errors

pytestmark = pytest.mark.browser


async def test_a_short_password_at_sign_up_is_refused_in_plain_words(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("newcomer")
    # The server's 422 is expected; anything else in the console is a bug.
    errors = console_errors(page, refused=("/api/v1/accounts",))
    await page.goto(server.url)
    await page.get_by_role("button", name="Create an account").click()
    await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    await page.get_by_label("Username").fill("newcomer")
    password = page.get_by_label("Password")
    await password.fill("x" * (PASSWORD_MIN - 1))
    await page.get_by_role("button", name="Create account").click()

    alert = page.get_by_role("alert")
    await expect(alert).to_have_text(f"Use at least {PASSWORD_MIN} characters.")
    await expect(password).to_have_attribute("aria-invalid", "true")
    await expect(password).to_be_focused()
    await expect(page.get_by_label("Username")).not_to_have_attribute("aria-invalid", "true")

    # Two problems at once: each is named by the form's own label.
    await page.get_by_label("Username").fill("No Spaces")
    await page.get_by_role("button", name="Create account").click()
    await expect(alert).to_have_text(
        "Username: use 3 to 32 lowercase letters, digits or _. "
        f"Password: use at least {PASSWORD_MIN} characters."
    )
    await expect(page.get_by_label("Username")).to_be_focused()
    await expect(page.get_by_text("should", exact=False)).to_have_count(0)
    assert errors == []

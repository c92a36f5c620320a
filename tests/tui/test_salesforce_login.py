"""Logging in to Salesforce from the app: the PKCE flow shows the authorize URL and waits for
the browser's redirect; escape cancels the wait. Against the Salesforce emulator's OAuth
endpoints, with a real loopback listener (the "browser" is an HTTP client following redirects).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from textual.widgets import Input

from sync.model import Side
from tests.tui.conftest import SIZE, wait_until
from tui.app import ReminderSyncApp
from tui.screens.login import Accounts, LoginScreen


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    from sync.engine import build_engine
    from sync.secrets import MemoryStore

    secrets = MemoryStore()
    engine = build_engine(tmp_path / "home", secrets)
    yield engine, secrets
    await engine.aclose()


async def start_login(app: ReminderSyncApp, pilot: Any, sf: Any) -> LoginScreen:
    await pilot.press("f")  # the welcome screen's "Log in to Salesforce"
    screen = app.screen
    assert isinstance(screen, LoginScreen) and screen.side is Side.SALESFORCE
    screen.query_one("#login_url", Input).value = sf.base_url
    screen.query_one("#client_id", Input).value = sf.client_id
    await pilot.click("#go")
    await wait_until(pilot, lambda: screen.authorize_url, what="the authorize URL on screen")
    assert "Open this URL" in str(screen.query_one("#login-url").render())
    return screen


async def test_pkce_login_shows_the_url_and_completes_on_the_redirect(
    fresh: tuple[Any, Any], sf: Any
) -> None:
    engine, secrets = fresh
    sf.app.state.emulator.set_auto_approve(True)
    accounts = Accounts(engine, secrets, redirect_port=0)
    app = ReminderSyncApp(engine, run_engine=False, accounts=accounts)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_login(app, pilot, sf)
        url = screen.authorize_url
        assert url.startswith(sf.base_url + "/services/oauth2/authorize?")
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"] and "code_verifier" not in query
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
            landing = await browser.get(url)  # approve, then the redirect to the app
        assert landing.status_code == 200
        await wait_until(
            pilot,
            lambda: engine.status().connections.get("salesforce"),
            what="the Salesforce connection saved",
        )
        state_file = Path(engine.store.path).read_text()
        assert "access_token" not in state_file and "refresh_token" not in state_file


async def test_escape_cancels_the_wait_and_closes_the_listener(
    fresh: tuple[Any, Any], sf: Any
) -> None:
    engine, secrets = fresh
    accounts = Accounts(engine, secrets, redirect_port=0)
    app = ReminderSyncApp(engine, run_engine=False, accounts=accounts)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_login(app, pilot, sf)
        redirect = parse_qs(urlsplit(screen.authorize_url).query)["redirect_uri"][0]
        port = urlsplit(redirect).port
        await pilot.press("escape")
        assert not isinstance(app.screen, LoginScreen)
        await wait_until(pilot, lambda: not _listening(port), what="the listener to close")
        assert not engine.status().connections.get("salesforce")


def _listening(port: int | None) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port or 0)) == 0

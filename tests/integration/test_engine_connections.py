"""Logging in and out, against the emulators: what is kept where."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.config import ConfigError
from sync.connections import connect_salesconnect, connect_salesforce, logout
from sync.connectors.http import ServiceError
from sync.connectors.salesforce_auth import SECRET_ACCESS_TOKEN, SECRET_REFRESH_TOKEN


async def test_pkce_login_keeps_the_tokens_in_the_secret_store_only(
    sf, home: Path, secrets: Any
) -> None:
    sf.app.state.emulator.set_auto_approve(True)
    announced: list[str] = []

    def browser(url: str) -> None:  # the user opens the printed URL
        announced.append(url)
        threading.Thread(target=httpx.get, args=(url,), kwargs={"follow_redirects": True}).start()

    who = await connect_salesforce(
        secrets,
        login_url=sf.base_url,
        client_id=sf.client_id,
        auth="pkce",
        announce=browser,
        home=home,
        redirect_port=0,
        open_browser=False,
    )

    assert sf.user_id in who
    assert announced and "code_challenge=" in announced[0] and "code_verifier" not in announced[0]
    assert (await secrets.get(SECRET_REFRESH_TOKEN)) is not None
    state = (home / "state.json").read_text()
    assert (await secrets.get(SECRET_ACCESS_TOKEN)).reveal() not in state
    assert (await secrets.get(SECRET_REFRESH_TOKEN)).reveal() not in state
    saved = json.loads(state)["connections"]["salesforce"]
    assert saved["auth"] == "pkce" and saved["external_id_field"] == "ReminderSync_Key__c"


@pytest.mark.parametrize("sf_config", [{"external_id_field": None}])
async def test_an_org_without_the_key_field_is_noted_at_login(
    sf, home: Path, secrets: Any, sf_config
) -> None:
    await connect_salesforce(
        secrets,
        login_url=sf.base_url,
        client_id=sf.client_id,
        auth="client-credentials",
        secret=sf.client_secret,
        home=home,
    )
    saved = json.loads((home / "state.json").read_text())["connections"]["salesforce"]
    assert saved["external_id_field"] is None


async def test_a_wrong_sales_connect_secret_is_an_auth_error_and_saves_nothing(
    sc, home: Path, secrets: Any
) -> None:
    with pytest.raises(ServiceError) as caught:
        await connect_salesconnect(
            secrets,
            base_url=sc.base_url,
            client_id=sc.client_id,
            token_url=None,
            secret="not-the-SECRET-42",
            home=home,
        )
    assert caught.value.category == "auth"
    assert "not-the-SECRET-42" not in str(caught.value) + repr(caught.value)
    assert (
        not (home / "state.json").exists()
        or json.loads((home / "state.json").read_text())["connections"] == {}
    )
    assert await secrets.get("salesconnect.client_secret") is None


async def test_a_url_on_an_unexpected_host_is_refused(home: Path, secrets: Any) -> None:
    with pytest.raises(ConfigError, match="not an expected host"):
        await connect_salesconnect(
            secrets,
            base_url="https://salesconnect.evil.example/api/v1",
            client_id="x",
            token_url=None,
            secret="s",
            home=home,
        )


async def test_logout_revokes_and_forgets_the_salesforce_session(
    sf, sc, connected_home: Path, secrets: Any
) -> None:
    token = (await secrets.get(SECRET_ACCESS_TOKEN)).reveal()
    await logout(secrets, ["salesforce"], home=connected_home)

    assert await secrets.get(SECRET_ACCESS_TOKEN) is None
    response = httpx.get(
        sf.base_url + "/services/data/v62.0/limits",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401  # revoked at the service, not only forgotten here
    state = json.loads((connected_home / "state.json").read_text())
    assert set(state["connections"]) == {"salesconnect"}


class LockedSalesConnectSecrets:
    """The user's secret store with the Sales Connect entries locked (as a keyring that waits
    for its password answers): every read or write of them fails until `locked` is False."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.locked = True

    def _check(self, name: str) -> None:
        from sync.secrets import SecretStoreError

        if self.locked and name.startswith("salesconnect"):
            raise SecretStoreError(
                f"The keyring did not answer within 0.5 s when asked to read {name}. "
                "It may be locked and waiting for a password: unlock it and try again."
            )

    async def get(self, name: str) -> Any:
        self._check(name)
        return await self.inner.get(name)

    async def set(self, name: str, value: Any) -> None:
        self._check(name)
        await self.inner.set(name, value)

    async def delete(self, name: str) -> None:
        await self.inner.delete(name)


async def test_a_locked_keyring_fails_the_run_with_its_advice_and_the_next_run_goes_on(
    sf, sc, clock, connected_home: Path, secrets: Any
) -> None:
    from sync.engine import build_engine
    from sync.events import Outcome, SyncFailed

    locked = LockedSalesConnectSecrets(secrets)
    engine = build_engine(connected_home, locked, clock=clock.now)
    try:
        await engine.set_enabled(True, start=False)
        clock.shift(seconds=1)
        sc.create_task(name="Send contract")
        failures: list[SyncFailed] = []
        engine.subscribe(lambda e: failures.append(e) if isinstance(e, SyncFailed) else None)

        summary = await engine.run_once()

        assert summary.outcome is Outcome.FAILED
        assert "Internal error" not in summary.message
        assert "keyring" in summary.message and "unlock" in summary.message
        assert [(e.category, e.message) for e in failures] == [("auth", summary.message)]
        assert sf.tasks() == [] and engine.store.links() == {}

        locked.locked = False  # the user unlocked the keyring
        summary = await engine.run_once()
        assert summary.outcome is Outcome.DONE, summary.message
        assert [t["Subject"] for t in sf.tasks()] == ["Send contract"]
    finally:
        await engine.aclose()

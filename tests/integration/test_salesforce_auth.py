"""Salesforce login: URL checks, PKCE pieces, the loopback listener, and the flows end to end
against the Salesforce emulator over loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulators.salesforce import SalesforceEmulator, SalesforceEmulatorConfig, create_app
from emulators.server import RunningServer, serve_in_thread, serving
from sync.connectors.http import ServiceError
from sync.connectors.salesforce import SalesforceClient
from sync.connectors.salesforce_auth import (
    SECRET_ACCESS_TOKEN,
    SECRET_CLIENT_SECRET,
    SECRET_INSTANCE_URL,
    SECRET_PRIVATE_KEY,
    SECRET_REFRESH_TOKEN,
    AuthMethod,
    PkceLogin,
    SalesforceAuthConfig,
    SalesforceSession,
    login_headless,
    make_jwt_assertion,
    pkce_pair,
    validate_salesforce_url,
)
from sync.secrets import MemoryStore


class DictStore:
    """The secret-store protocol over a dict (stands in for the OS keyring)."""

    def __init__(self, **values: str) -> None:
        self.values = dict(values)
        self.writes: list[tuple[str, str]] = []

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.writes.append((key, value))
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


# ---------------------------------------------------------------------------------------------
# Which hosts the token may go to


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://test.salesforce.com/", "https://test.salesforce.com"),
        ("https://Acme.My.Salesforce.com", "https://acme.my.salesforce.com"),
        (
            "https://acme--dev.sandbox.my.salesforce.com",
            "https://acme--dev.sandbox.my.salesforce.com",
        ),
        ("https://na1.salesforce.com", "https://na1.salesforce.com"),
        ("https://acme.lightning.force.com", "https://acme.lightning.force.com"),
        ("https://acme.my.salesforce.mil", "https://acme.my.salesforce.mil"),
        ("https://acme.my.salesforce-sites.com", "https://acme.my.salesforce-sites.com"),
        ("https://eu1.cloudforce.com", "https://eu1.cloudforce.com"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ("http://localhost:8123/", "http://localhost:8123"),
        ("http://[::1]:8123", "http://[::1]:8123"),
    ],
)
def test_salesforce_hosts_are_accepted(url: str, expected: str) -> None:
    assert validate_salesforce_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.my.salesforce.com.evil.io",
        "https://evilsalesforce.com",
        "https://salesforce.com.evil.io/",
        "https://evil.io/acme.my.salesforce.com",
        "https://user:pw@acme.my.salesforce.com",
        "https://evil.io@acme.my.salesforce.com",
        "https://acme.my.salesforce.com:8443",
        "http://acme.my.salesforce.com",
        "ftp://acme.my.salesforce.com",
        "https://acme.my.salesforce.com/services/data",
        "https://acme.my.salesforce.com?x=1",
        "https://acme.my.salesforce.com#frag",
        "https://evil.io\\@acme.my.salesforce.com",
        "https://acme.my.ѕalesforce.com",  # Cyrillic 's'
        "https://10.0.0.1",
        "http://192.168.1.10:8000",
        "acme.my.salesforce.com",
        "",
        "https://acme.my.salesforce.com\n.evil.io",
    ],
)
def test_look_alikes_and_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(ServiceError) as caught:
        validate_salesforce_url(url)
    assert caught.value.code == "UNTRUSTED_URL"
    assert "Refusing the Salesforce instance URL" in str(caught.value)


def test_config_checks_the_login_url() -> None:
    with pytest.raises(ServiceError):
        SalesforceAuthConfig("https://login.salesforce.com.evil.io", "cid")
    with pytest.raises(ServiceError, match="username"):
        SalesforceAuthConfig("https://login.salesforce.com", "cid", method=AuthMethod.JWT)


# ---------------------------------------------------------------------------------------------
# PKCE and JWT pieces


def test_pkce_pair_is_s256_and_fresh_each_time() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[str, str]:
    return _rsa_pair()


def test_jwt_assertion_claims(rsa_pair: tuple[str, str]) -> None:
    private, public = rsa_pair
    config = SalesforceAuthConfig(
        "https://login.salesforce.com", "cid", method=AuthMethod.JWT, username="rep@example.com"
    )
    now = time.time()
    token = make_jwt_assertion(config, private, now)
    claims = jwt.decode(
        token, public, algorithms=["RS256"], audience="https://login.salesforce.com"
    )
    assert claims["iss"] == "cid"
    assert claims["sub"] == "rep@example.com"
    assert 0 < claims["exp"] - now <= 180
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_a_bad_private_key_is_a_clear_error() -> None:
    config = SalesforceAuthConfig(
        "https://login.salesforce.com", "cid", method=AuthMethod.JWT, username="u"
    )
    with pytest.raises(ServiceError) as caught:
        make_jwt_assertion(config, "not a key", time.time())
    assert caught.value.code == "BAD_PRIVATE_KEY"
    assert "not a key" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# The loopback listener on its own (no authorization server needed)


async def test_pkce_listener_checks_state_and_hands_over_the_code() -> None:
    config = SalesforceAuthConfig("https://login.salesforce.com", "cid")
    login = await PkceLogin.start(config, DictStore(), port=0)
    query = parse_qs(urlsplit(login.authorize_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [login.redirect_uri]
    assert login.redirect_uri.startswith("http://127.0.0.1:")
    state = query["state"][0]
    waiter = asyncio.create_task(login.wait_for_code(timeout=10))
    async with httpx.AsyncClient() as browser:
        forged = await browser.get(login.redirect_uri, params={"code": "evil", "state": "guess"})
        assert forged.status_code == 400
        assert not waiter.done()  # a forged redirect is ignored, the real one still counts
        other = await browser.get(login.redirect_uri.replace("OauthRedirect", "favicon.ico"))
        assert other.status_code == 404
        real = await browser.get(login.redirect_uri, params={"code": "the-code", "state": state})
        assert real.status_code == 200
        assert "the-code" not in real.text
    assert await waiter == "the-code"


async def test_pkce_listener_reports_a_denied_login() -> None:
    config = SalesforceAuthConfig("https://login.salesforce.com", "cid")
    login = await PkceLogin.start(config, DictStore(), port=0)
    state = parse_qs(urlsplit(login.authorize_url).query)["state"][0]
    waiter = asyncio.create_task(login.wait_for_code(timeout=10))
    async with httpx.AsyncClient() as browser:
        await browser.get(
            login.redirect_uri,
            params={
                "error": "access_denied",
                "error_description": "end-user denied",
                "state": state,
            },
        )
    with pytest.raises(ServiceError) as caught:
        await waiter
    assert caught.value.code == "access_denied"
    assert "end-user denied" in str(caught.value)


async def test_pkce_login_can_be_cancelled_and_frees_the_port() -> None:
    config = SalesforceAuthConfig("https://login.salesforce.com", "cid")
    login = await PkceLogin.start(config, DictStore(), port=0)
    port = urlsplit(login.redirect_uri).port
    waiter = asyncio.create_task(login.complete(timeout=60))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    again = await PkceLogin.start(config, DictStore(), port=port or 0)  # the port is free again
    await again.close()


async def test_pkce_login_times_out_with_a_clear_message() -> None:
    config = SalesforceAuthConfig("https://login.salesforce.com", "cid")
    login = await PkceLogin.start(config, DictStore(), port=0)
    with pytest.raises(ServiceError) as caught:
        await login.complete(timeout=0.1)
    assert caught.value.code == "LOGIN_TIMEOUT"


async def test_a_busy_redirect_port_is_a_clear_error() -> None:
    config = SalesforceAuthConfig("https://login.salesforce.com", "cid")
    first = await PkceLogin.start(config, DictStore(), port=0)
    port = urlsplit(first.redirect_uri).port
    try:
        with pytest.raises(ServiceError) as caught:
            await PkceLogin.start(config, DictStore(), port=port or 0)
        assert caught.value.code == "REDIRECT_PORT_BUSY"
    finally:
        await first.close()


# ---------------------------------------------------------------------------------------------
# The flows end to end against the Salesforce emulator (loopback sockets)


@dataclass
class Org:
    app: Starlette
    server: RunningServer
    private_key: str

    @property
    def emulator(self) -> SalesforceEmulator:
        return self.app.state.emulator

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def config(self, method: AuthMethod = AuthMethod.PKCE, **kwargs: str) -> SalesforceAuthConfig:
        return SalesforceAuthConfig(
            self.base_url, self.emulator.config.client_id, method=method, **kwargs
        )


@pytest.fixture(scope="module")
def shared_org(rsa_pair: tuple[str, str]) -> Iterator[Org]:
    private, public = rsa_pair
    config = replace(
        SalesforceEmulatorConfig(), rotate_refresh_tokens=True, jwt_public_key_pem=public
    )
    app = create_app(config)
    with serve_in_thread(app) as server:
        yield Org(app, server, private)


@pytest.fixture
def org(shared_org: Org) -> Org:
    shared_org.emulator.reset()
    shared_org.emulator.set_auto_approve(False)
    return shared_org


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""


async def approve_in_browser(login: PkceLogin, decision: str = "allow") -> httpx.Response:
    """What the user's browser does: open the URL, press Allow, follow the redirect home."""
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(login.authorize_url)
        assert page.status_code == 200 and "Allow Access?" in page.text
        form = _Form()
        form.feed(page.text)
        answer = await browser.post(
            login.config.authorize_url, data={**form.fields, "decision": decision}
        )
        assert answer.status_code == 302
        location = answer.headers["location"]
        assert location.startswith(login.redirect_uri + "?")
        return await browser.get(location)


async def pkce_login(org: Org, store: DictStore | MemoryStore) -> SalesforceSession:
    login = await PkceLogin.start(org.config(), store, port=0)
    waiting = asyncio.create_task(login.complete(timeout=20))
    landing = await approve_in_browser(login)
    assert landing.status_code == 200 and "Logged in to Salesforce" in landing.text
    return await waiting


async def test_pkce_login_end_to_end(org: Org) -> None:
    store = MemoryStore()  # the app's own store type: get() hands back Secret wrappers
    session = await pkce_login(org, store)  # type: ignore[arg-type]
    assert session.instance_url == org.base_url
    assert session.user_id == org.emulator.config.user_id
    refresh = await store.get(SECRET_REFRESH_TOKEN)
    assert refresh is not None and refresh.reveal().startswith("5Aep")
    instance = await store.get(SECRET_INSTANCE_URL)
    assert instance is not None and instance.reveal() == org.base_url
    client = SalesforceClient(session)
    try:
        assert await client.user_id() == org.emulator.config.user_id
        assert [r async for r in client.query("SELECT Id FROM Task")] == []
    finally:
        await client.aclose()
        await session.aclose()
    # A new process picks the session up from the store alone.
    again = SalesforceSession(org.config(), store)  # type: ignore[arg-type]
    assert (await again.headers())["Authorization"].startswith("Bearer ")
    await again.aclose()


async def test_pkce_login_denied_in_the_browser(org: Org) -> None:
    login = await PkceLogin.start(org.config(), DictStore(), port=0)
    waiting = asyncio.create_task(login.complete(timeout=20))
    await approve_in_browser(login, decision="deny")
    with pytest.raises(ServiceError) as caught:
        await waiting
    assert caught.value.code == "access_denied"


async def test_refresh_token_rotation_saves_the_new_token_before_using_it(org: Org) -> None:
    store = DictStore()
    session = await pkce_login(org, store)
    first_refresh = store.values[SECRET_REFRESH_TOKEN]
    store.writes.clear()
    await session.refresh()
    second_refresh = store.values[SECRET_REFRESH_TOKEN]
    assert second_refresh != first_refresh
    written = [key for key, _ in store.writes]
    assert written.index(SECRET_REFRESH_TOKEN) < written.index(SECRET_ACCESS_TOKEN)
    # The old refresh token died at once; the saved one keeps working.
    await session.refresh()
    assert store.values[SECRET_REFRESH_TOKEN] not in (first_refresh, second_refresh)
    stale = SalesforceSession(org.config(), DictStore(**{SECRET_REFRESH_TOKEN: first_refresh}))
    with pytest.raises(ServiceError) as caught:
        await stale.start()
    assert (caught.value.category, caught.value.code) == ("auth", "invalid_grant")
    await session.aclose()


class FailingRefreshStore(DictStore):
    """A keyring that fails to save a new refresh token."""

    fail = False

    async def set(self, key: str, value: str) -> None:
        if self.fail and key == SECRET_REFRESH_TOKEN:
            raise ServiceError("keyring locked", service="keyring", category="internal")
        await super().set(key, value)


async def test_a_rotated_token_that_cannot_be_saved_is_never_used(org: Org) -> None:
    store = FailingRefreshStore()
    session = await pkce_login(org, store)
    before = await session.headers()
    store.fail = True
    with pytest.raises(ServiceError, match="keyring locked"):
        await session.refresh()
    assert await session.headers() == before
    assert store.values[SECRET_ACCESS_TOKEN] == before["Authorization"].removeprefix("Bearer ")
    await session.aclose()


async def test_an_expired_access_token_is_refreshed_through_the_refresh_token(org: Org) -> None:
    store = DictStore()
    session = await pkce_login(org, store)
    org.emulator.oauth.expire(store.values[SECRET_ACCESS_TOKEN])
    client = SalesforceClient(session)
    try:
        assert await client.picklists()
    finally:
        await client.aclose()
    assert session.refreshes == 2  # the login, then one refresh
    await session.aclose()


async def test_a_revoked_login_asks_the_user_to_log_in_again(org: Org) -> None:
    store = DictStore()
    session = await pkce_login(org, store)
    async with httpx.AsyncClient() as http:
        revoked = await http.post(
            f"{org.base_url}/services/oauth2/revoke",
            data={"token": store.values[SECRET_REFRESH_TOKEN]},
        )
        assert revoked.status_code == 200
    client = SalesforceClient(session)
    try:
        with pytest.raises(ServiceError) as caught:
            await client.picklists()
    finally:
        await client.aclose()
    error = caught.value
    assert (error.category, error.code) == ("auth", "invalid_grant")
    assert "Log in again" in str(error)
    await session.aclose()


async def test_concurrent_refreshes_are_single_flight(org: Org) -> None:
    store = DictStore()
    session = await pkce_login(org, store)
    stale = store.values[SECRET_ACCESS_TOKEN]
    await asyncio.gather(*(session.refresh(stale_token=stale) for _ in range(8)))
    assert session.refreshes == 2  # login + exactly one refresh, under rotation too
    await session.aclose()


async def test_logout_revokes_and_forgets(org: Org) -> None:
    store = DictStore()
    session = await pkce_login(org, store)
    refresh = store.values[SECRET_REFRESH_TOKEN]
    await session.logout()
    assert not any(k in store.values for k in (SECRET_ACCESS_TOKEN, SECRET_REFRESH_TOKEN))
    again = SalesforceSession(org.config(), DictStore(**{SECRET_REFRESH_TOKEN: refresh}))
    with pytest.raises(ServiceError) as caught:
        await again.start()
    assert caught.value.code == "invalid_grant"
    await session.aclose()


async def test_client_credentials_login(org: Org) -> None:
    store = MemoryStore({SECRET_CLIENT_SECRET: org.emulator.config.client_secret})
    session = await login_headless(org.config(AuthMethod.CLIENT_CREDENTIALS), store)
    assert session.user_id == org.emulator.config.user_id
    assert await store.get(SECRET_REFRESH_TOKEN) is None
    assert await store.get(SECRET_ACCESS_TOKEN) is not None
    await session.aclose()


async def test_client_credentials_with_a_wrong_secret(org: Org) -> None:
    store = DictStore(**{SECRET_CLIENT_SECRET: "wrong-secret"})
    with pytest.raises(ServiceError) as caught:
        await login_headless(org.config(AuthMethod.CLIENT_CREDENTIALS), store)
    assert (caught.value.category, caught.value.code) == ("auth", "invalid_client")
    assert "wrong-secret" not in str(caught.value)


async def test_jwt_bearer_login_and_refresh(org: Org) -> None:
    store = DictStore(**{SECRET_PRIVATE_KEY: org.private_key})
    config = org.config(AuthMethod.JWT, username=org.emulator.config.username)
    session = await login_headless(config, store)
    assert session.user_id == org.emulator.config.user_id
    org.emulator.oauth.expire(store.values[SECRET_ACCESS_TOKEN])
    client = SalesforceClient(session)
    try:
        assert await client.picklists()  # a fresh assertion replaces the expired token
    finally:
        await client.aclose()
    assert session.refreshes == 2
    await session.aclose()


async def test_jwt_signed_with_another_key_is_refused(org: Org) -> None:
    other_private, _ = _rsa_pair()
    store = DictStore(**{SECRET_PRIVATE_KEY: other_private})
    config = org.config(AuthMethod.JWT, username=org.emulator.config.username)
    with pytest.raises(ServiceError) as caught:
        await login_headless(config, store)
    assert (caught.value.category, caught.value.code) == ("auth", "invalid_grant")


async def test_jwt_for_an_unknown_user_is_refused(org: Org) -> None:
    store = DictStore(**{SECRET_PRIVATE_KEY: org.private_key})
    with pytest.raises(ServiceError) as caught:
        await login_headless(org.config(AuthMethod.JWT, username="nobody@example.com"), store)
    assert caught.value.code == "invalid_grant"


async def test_no_saved_login_is_a_clear_error(org: Org) -> None:
    session = SalesforceSession(org.config(), DictStore())
    with pytest.raises(ServiceError) as caught:
        await session.headers()
    assert caught.value.code == "NOT_LOGGED_IN"
    assert "reminder-sync connect salesforce" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# A token endpoint that points the token at a foreign host


def _token_app(instance_url: str) -> Starlette:
    async def token(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "access_token": "stolen-if-followed",
                "instance_url": instance_url,
                "id": "https://login.salesforce.com/id/00D000000000001/005000000000001",
                "issued_at": "1",
            }
        )

    return Starlette(routes=[Route("/services/oauth2/token", token, methods=["POST"])])


@pytest.mark.parametrize(
    "instance_url",
    ["https://acme.my.salesforce.com.evil.io", "http://acme.my.salesforce.com", "https://x@y.z"],
)
async def test_a_foreign_instance_url_in_a_token_response_is_refused(instance_url: str) -> None:
    async with serving(_token_app(instance_url)) as server:
        store = DictStore(**{SECRET_CLIENT_SECRET: "s"})
        config = SalesforceAuthConfig(server.base_url, "cid", method=AuthMethod.CLIENT_CREDENTIALS)
        with pytest.raises(ServiceError) as caught:
            await login_headless(config, store)
    assert caught.value.code == "UNTRUSTED_URL"
    assert SECRET_ACCESS_TOKEN not in store.values
    assert "stolen-if-followed" not in str(caught.value)


class LockedKeyring:
    """A store whose every call fails the way a locked keyring does."""

    async def get(self, key: str) -> str | None:
        raise RuntimeError("The keyring is locked: unlock it and try again.")

    async def set(self, key: str, value: str) -> None:
        raise RuntimeError("The keyring is locked: unlock it and try again.")

    async def delete(self, key: str) -> None:
        raise RuntimeError("The keyring is locked: unlock it and try again.")


async def test_a_failing_keyring_is_a_clear_service_error() -> None:
    session = SalesforceSession(
        SalesforceAuthConfig("https://login.salesforce.com", "c"), LockedKeyring()
    )
    with pytest.raises(ServiceError) as caught:
        await session.headers()
    assert caught.value.code == "SECRET_STORE"
    assert "unlock it" in str(caught.value)

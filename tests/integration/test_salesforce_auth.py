"""Salesforce login: URL checks, PKCE pieces, the loopback listener, and the flows end to end
against the Salesforce emulator over loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sync.connectors.http import ServiceError
from sync.connectors.salesforce_auth import (
    AuthMethod,
    PkceLogin,
    SalesforceAuthConfig,
    make_jwt_assertion,
    pkce_pair,
    validate_salesforce_url,
)


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

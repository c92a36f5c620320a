"""OAuth endpoints of the Salesforce emulator, over loopback sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import replace
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulators.salesforce import SalesforceEmulatorConfig, create_app, default_config
from emulators.server import RunningServer, serve_in_thread

REDIRECT = "http://127.0.0.1:8765/callback"


def _rsa_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


PRIVATE_KEY, PUBLIC_KEY = _rsa_pair()


@pytest.fixture(scope="module")
def sf_emulator_config() -> SalesforceEmulatorConfig:
    return replace(default_config(), jwt_public_key_pem=PUBLIC_KEY)


@pytest.fixture
def env(served, sf_emulator, sf_client):
    sf_emulator.set_auto_approve(False)
    return sf_client(authorized=False), sf_emulator, served[0]


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(challenge: str, **extra) -> dict:
    return {
        "response_type": "code",
        "client_id": default_config().client_id,
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def approve(client: httpx.Client, params: dict, decision: str = "allow") -> dict:
    """Load the approval page and submit its form, as a browser would."""
    page = client.get("/services/oauth2/authorize", params=params)
    assert page.status_code == 200
    assert "Allow Access?" in page.text
    fields = {
        unescape(name): unescape(value)
        for name, value in re.findall(r'type="hidden" name="([^"]*)" value="([^"]*)"', page.text)
    }
    action = re.search(r'<form method="POST" action="([^"]+)"', page.text).group(1)
    answer = client.post(action, data={**fields, "decision": decision})
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(client: httpx.Client, code: str, verifier: str, **extra) -> httpx.Response:
    return client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": default_config().client_id,
            "redirect_uri": REDIRECT,
            **extra,
        },
    )


def login(client: httpx.Client) -> dict:
    verifier, challenge = pkce_pair()
    redirect = approve(client, authorize_params(challenge))
    response = exchange(client, redirect["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json()


def data_get(client: httpx.Client, token: str, path: str = "/limits") -> httpx.Response:
    return client.get("/services/data/v62.0" + path, headers={"Authorization": f"Bearer {token}"})


def test_pkce_web_server_flow_returns_the_real_token_shape(env) -> None:
    client, emulator, server = env
    verifier, challenge = pkce_pair()
    redirect = approve(client, authorize_params(challenge))
    assert redirect["state"] == "st-123"
    response = exchange(client, redirect["code"], verifier)
    body = response.json()
    assert set(body) == {
        "access_token", "refresh_token", "signature", "scope", "instance_url", "id",
        "token_type", "issued_at",
    }  # fmt: skip
    assert "expires_in" not in body
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == server.base_url
    assert body["id"] == f"{server.base_url}/id/{emulator.config.org_id}/{emulator.config.user_id}"
    assert body["issued_at"].isdigit() and abs(int(body["issued_at"]) / 1000 - time.time()) < 60
    expected = hmac.new(
        emulator.config.client_secret.encode(),
        (body["id"] + body["issued_at"]).encode(),
        hashlib.sha256,
    ).digest()
    assert base64.b64decode(body["signature"]) == expected
    assert data_get(client, body["access_token"]).status_code == 200


def test_wrong_code_verifier_is_rejected_and_the_code_stays_single_use(env) -> None:
    client, _, _ = env
    verifier, challenge = pkce_pair()
    redirect = approve(client, authorize_params(challenge))
    wrong = exchange(client, redirect["code"], verifier + "x")
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "invalid code verifier"}
    assert exchange(client, redirect["code"], verifier).status_code == 200
    again = exchange(client, redirect["code"], verifier)
    assert again.json()["error"] == "invalid_grant"


def test_code_exchange_checks_redirect_uri_client_and_secret(env) -> None:
    client, _, _ = env
    verifier, challenge = pkce_pair()
    code = approve(client, authorize_params(challenge))["code"]
    other_redirect = exchange(client, code, verifier, redirect_uri="http://127.0.0.1:1/x")
    assert other_redirect.json()["error"] == "redirect_uri_mismatch"
    bad_client = exchange(client, code, verifier, client_id="someone-else")
    assert bad_client.json() == {
        "error": "invalid_client_id",
        "error_description": "client identifier invalid",
    }
    bad_secret = exchange(client, code, verifier, client_secret="wrong")
    assert bad_secret.json()["error"] == "invalid_client"


def test_authorization_code_expires_after_fifteen_minutes(env) -> None:
    client, emulator, _ = env
    verifier, challenge = pkce_pair()
    code = approve(client, authorize_params(challenge))["code"]
    emulator.advance_clock(16 * 60)
    response = exchange(client, code, verifier)
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "expired authorization code",
    }


def test_authorize_refusals(env) -> None:
    client, _, _ = env
    _, challenge = pkce_pair()
    denied = approve(client, authorize_params(challenge), decision="deny")
    assert denied["error"] == "access_denied" and denied["state"] == "st-123"

    no_pkce = authorize_params(challenge)
    del no_pkce["code_challenge"]
    response = client.get("/services/oauth2/authorize", params=no_pkce)
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["location"]

    plain = client.get(
        "/services/oauth2/authorize",
        params=authorize_params(challenge, code_challenge_method="plain"),
    )
    assert "error=invalid_request" in plain.headers["location"]

    foreign = client.get(
        "/services/oauth2/authorize",
        params=authorize_params(challenge, redirect_uri="https://evil.example/cb"),
    )
    assert foreign.status_code == 400
    assert "redirect_uri_mismatch" in foreign.text
    unknown = client.get(
        "/services/oauth2/authorize", params=authorize_params(challenge, client_id="nope")
    )
    assert unknown.status_code == 400 and "invalid_client_id" in unknown.text


def test_auto_approve_redirects_at_once(env) -> None:
    client, emulator, _ = env
    emulator.set_auto_approve(True)
    verifier, challenge = pkce_pair()
    response = client.get("/services/oauth2/authorize", params=authorize_params(challenge))
    assert response.status_code == 302
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    assert exchange(client, code, verifier).status_code == 200


def refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": default_config().client_id,
        },
    )


def test_access_token_expires_on_the_emulator_clock_and_refresh_brings_a_new_one(env) -> None:
    client, emulator, _ = env
    tokens = login(client)
    emulator.advance_clock(emulator.config.access_token_lifetime_seconds + 1)
    expired = data_get(client, tokens["access_token"])
    assert expired.status_code == 401
    assert expired.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    renewed = refresh(client, tokens["refresh_token"])
    assert renewed.status_code == 200
    body = renewed.json()
    assert "refresh_token" not in body  # no rotation configured
    assert body["access_token"] != tokens["access_token"]
    assert data_get(client, body["access_token"]).status_code == 200
    # Without rotation the same refresh token keeps working.
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_refresh_token_rotation_kills_the_old_refresh_token() -> None:
    config = SalesforceEmulatorConfig(rotate_refresh_tokens=True)
    app = create_app(config)
    with serve_in_thread(app) as server, httpx.Client(base_url=server.base_url) as client:
        tokens = login(client)
        first = refresh(client, tokens["refresh_token"]).json()
        assert first["refresh_token"] != tokens["refresh_token"]
        stale = refresh(client, tokens["refresh_token"])
        assert stale.status_code == 400
        assert stale.json() == {
            "error": "invalid_grant",
            "error_description": "expired access/refresh token",
        }
        second = refresh(client, first["refresh_token"])
        assert second.status_code == 200
        assert data_get(client, second.json()["access_token"]).status_code == 200


def test_revoke_refresh_token_ends_its_access_tokens(env) -> None:
    client, _, _ = env
    tokens = login(client)
    renewed = refresh(client, tokens["refresh_token"]).json()
    assert client.post(
        "/services/oauth2/revoke", data={"token": tokens["refresh_token"]}
    ).is_success
    assert data_get(client, tokens["access_token"]).status_code == 401
    assert data_get(client, renewed["access_token"]).status_code == 401
    assert refresh(client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    unknown = client.post("/services/oauth2/revoke", data={"token": "nope"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_token"


def test_revoke_access_token_only(env) -> None:
    client, _, _ = env
    tokens = login(client)
    assert client.get(
        "/services/oauth2/revoke", params={"token": tokens["access_token"]}
    ).is_success
    assert data_get(client, tokens["access_token"]).status_code == 401
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_client_credentials_and_password_grants(env) -> None:
    client, emulator, _ = env
    cfg = emulator.config
    granted = client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
        },
    )
    assert granted.status_code == 200 and "refresh_token" not in granted.json()
    assert data_get(client, granted.json()["access_token"]).status_code == 200
    no_secret = client.post(
        "/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": cfg.client_id},
    )
    assert no_secret.json()["error"] == "invalid_client"
    password = {
        "grant_type": "password",
        "client_id": cfg.client_id,
        "client_secret": cfg.client_secret,
        "username": cfg.username,
    }
    assert client.post(
        "/services/oauth2/token", data={**password, "password": cfg.password}
    ).is_success
    wrong = client.post("/services/oauth2/token", data={**password, "password": "guess"})
    assert wrong.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    unsupported = client.post("/services/oauth2/token", data={"grant_type": "magic"})
    assert unsupported.json()["error"] == "unsupported_grant_type"


def jwt_assertion(server: RunningServer, key: bytes = PRIVATE_KEY, **claims) -> str:
    cfg = default_config()
    body = {
        "iss": cfg.client_id,
        "sub": cfg.username,
        "aud": server.base_url,
        "exp": int(time.time()) + 180,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256")


def jwt_grant(client: httpx.Client, assertion: str) -> httpx.Response:
    return client.post(
        "/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )


def test_jwt_bearer_with_the_configured_key(env) -> None:
    client, emulator, server = env
    response = jwt_grant(client, jwt_assertion(server))
    assert response.status_code == 200
    body = response.json()
    assert "refresh_token" not in body
    assert body["id"].endswith(f"/{emulator.config.org_id}/{emulator.config.user_id}")
    assert data_get(client, body["access_token"]).status_code == 200
    real_login = jwt_grant(client, jwt_assertion(server, aud="https://login.salesforce.com"))
    assert real_login.status_code == 200


@pytest.mark.parametrize(
    ("change", "error", "description"),
    [
        ({"key": "other"}, "invalid_grant", "invalid assertion"),
        ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
        ({"aud": "https://evil.example"}, "invalid_grant", "audience is invalid"),
        ({"exp": 1000}, "invalid_grant", "expired authorization code"),
        ({"exp_in": 3600}, "invalid_grant", "invalid assertion"),
        ({"sub": "intruder@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
def test_jwt_bearer_refusals(env, change: dict, error: str, description: str) -> None:
    client, _, server = env
    change = dict(change)
    key = _rsa_pair()[0] if change.pop("key", None) else PRIVATE_KEY
    if "exp_in" in change:
        change["exp"] = int(time.time()) + change.pop("exp_in")
    response = jwt_grant(client, jwt_assertion(server, key, **change))
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_jwt_bearer_is_refused_when_no_key_is_configured() -> None:
    with serve_in_thread(create_app()) as server, httpx.Client(base_url=server.base_url) as client:
        response = jwt_grant(client, jwt_assertion(server))
    assert response.json()["error"] == "invalid_grant"


def test_userinfo_and_identity_url(env) -> None:
    client, emulator, _ = env
    tokens = login(client)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = client.get("/services/oauth2/userinfo", headers=auth).json()
    assert info["user_id"] == emulator.config.user_id
    assert info["organization_id"] == emulator.config.org_id
    assert info["preferred_username"] == emulator.config.username
    identity = client.get(tokens["id"], headers=auth)
    assert identity.status_code == 200
    assert identity.json()["urls"]["rest"].endswith("/services/data/v62.0/")
    assert client.get("/services/oauth2/userinfo").status_code == 403
    assert client.get(tokens["id"]).status_code == 403

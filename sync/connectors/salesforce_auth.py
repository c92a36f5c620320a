"""Logging in to Salesforce and keeping the session alive.

Flows (all against `{login_url}/services/oauth2/`):

- PKCE web-server flow (`PkceLogin`): a one-shot listener on 127.0.0.1 receives the browser's
  redirect; the authorize URL is also handed to the caller so a remote shell can print it.
- refresh-token flow: safe under refresh-token rotation (a new refresh token is saved to the
  secret store before the new access token is used, so a crash never leaves only a dead token).
- client credentials (a connected app's "run as" user) and JWT bearer (headless, RS256).

`SalesforceSession` holds the instance URL and the access token, hands out headers, and refreshes
single-flight: when many requests see a 401 at once, one refresh happens and the others reuse it.

Trusted hosts: Salesforce returns the instance URL in the token response and the client sends the
token there, so it is checked (https, no userinfo, no port, host under an allowed Salesforce
domain). `ALLOWED_DOMAINS` is the decision:

    salesforce.com        login., test., *.my.salesforce.com, sandboxes, legacy na1.-style pods
    force.com             *.lightning.force.com, legacy *.my.force.com / visualforce hosts
    cloudforce.com        legacy instance domains still seen in older orgs
    salesforce.mil        Government Cloud Plus (Defense)
    salesforce-sites.com  *.my.salesforce-sites.com (Salesforce Sites)

Plain http is accepted only on loopback (127.0.0.1, localhost, ::1: the emulator), with a port.

Secrets never appear in a log line, a URL, an exception or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt

from sync.connectors.http import RetryPolicy, ServiceError, make_client, response_json, send

log = logging.getLogger(__name__)

SERVICE = "salesforce"
ALLOWED_DOMAINS: tuple[str, ...] = (
    "salesforce.com",
    "force.com",
    "cloudforce.com",
    "salesforce.mil",
    "salesforce-sites.com",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Names in the secret store (the OS keyring in the app), "<service>:<what>" as sync.secrets names.
SECRET_ACCESS_TOKEN = "salesforce:access_token"
SECRET_REFRESH_TOKEN = "salesforce:refresh_token"
SECRET_INSTANCE_URL = "salesforce:instance_url"
SECRET_IDENTITY_URL = "salesforce:identity_url"
SECRET_CLIENT_SECRET = "salesforce:client_secret"
SECRET_PRIVATE_KEY = "salesforce:jwt_private_key"
SESSION_SECRETS = (
    SECRET_ACCESS_TOKEN,
    SECRET_REFRESH_TOKEN,
    SECRET_INSTANCE_URL,
    SECRET_IDENTITY_URL,
)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_SECONDS = 180  # Salesforce accepts at most 3 minutes
DEFAULT_REDIRECT_PORT = 1717
REDIRECT_PATH = "/OauthRedirect"
DEFAULT_SCOPE = "api refresh_token"
AUTH_POLICY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=10.0, request_timeout=30.0)


class SecretStore(Protocol):
    """What this module needs from sync.secrets: async get/set/delete by name.

    `get` may return the plain text or a wrapper with `reveal()` (sync.secrets.Secret).
    """

    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: str) -> None: ...

    async def delete(self, key: str) -> None: ...


def _store_failure(exc: Exception, what: str) -> ServiceError:
    # The store's own message says what to do (unlock the keyring...) and never holds a value.
    return ServiceError(
        f"Could not {what} the Salesforce login in the keyring: {clean_text(exc, 400)}",
        service=SERVICE,
        category="internal",
        retryable=True,
        code="SECRET_STORE",
    )


async def read_secret(store: SecretStore, key: str) -> str | None:
    """The text of a stored secret, unwrapping a `Secret` only here, where it is sent."""
    try:
        value = await store.get(key)
    except ServiceError:
        raise
    except Exception as exc:
        raise _store_failure(exc, "read") from None
    if value is None:
        return None
    reveal = getattr(value, "reveal", None)
    text = reveal() if callable(reveal) else value
    return text if isinstance(text, str) and text else None


async def write_secret(store: SecretStore, key: str, value: str) -> None:
    try:
        await store.set(key, value)
    except ServiceError:
        raise
    except Exception as exc:
        raise _store_failure(exc, "save") from None


async def forget_secret(store: SecretStore, key: str) -> None:
    try:
        await store.delete(key)
    except ServiceError:
        raise
    except Exception as exc:
        raise _store_failure(exc, "remove") from None


class AuthMethod(StrEnum):
    PKCE = "pkce"
    CLIENT_CREDENTIALS = "client-credentials"
    JWT = "jwt"


@dataclass(frozen=True)
class SalesforceAuthConfig:
    """Non-secret connection settings (safe for the state file).

    `login_url` is https://login.salesforce.com, https://test.salesforce.com or the org's My
    Domain (client credentials needs My Domain). `username` is the JWT subject.
    `jwt_audience` defaults to the login URL.
    """

    login_url: str
    client_id: str
    method: AuthMethod = AuthMethod.PKCE
    username: str | None = None
    jwt_audience: str | None = None
    scope: str = DEFAULT_SCOPE

    def __post_init__(self) -> None:
        object.__setattr__(self, "login_url", validate_salesforce_url(self.login_url, "login URL"))
        object.__setattr__(self, "method", AuthMethod(self.method))
        if not self.client_id.strip():
            raise auth_error("The Salesforce client id is empty.", code="CONFIG")
        if self.method is AuthMethod.JWT and not self.username:
            raise auth_error("The JWT bearer flow needs the Salesforce username.", code="CONFIG")

    @property
    def token_url(self) -> str:
        return f"{self.login_url}/services/oauth2/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.login_url}/services/oauth2/authorize"

    @property
    def revoke_url(self) -> str:
        return f"{self.login_url}/services/oauth2/revoke"


# ---------------------------------------------------------------------------------------------
# Errors and URL checks


def auth_error(message: str, *, code: str = "", status: int | None = None) -> ServiceError:
    return ServiceError(message, service=SERVICE, category="auth", code=code, status=status)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(text: Any, limit: int = 300) -> str:
    """Untrusted text from the service, safe for a message: no control chars, bounded."""
    return _CONTROL.sub("", str(text))[:limit]


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_salesforce_url(url: str, what: str = "instance URL") -> str:
    """Return `url` as a bare origin (scheme://host[:port]) or raise a clear ServiceError.

    https on a host under ALLOWED_DOMAINS with no userinfo, port, query or fragment; plain http
    (and a port) only on loopback.
    """

    def refuse(reason: str) -> ServiceError:
        return ServiceError(
            f"Refusing the Salesforce {what} {clean_text(url, 200)!r}: {reason}.",
            service=SERVICE,
            category="validation",
            code="UNTRUSTED_URL",
        )

    text = str(url).strip()
    if not text or "\\" in text or any(c.isspace() for c in text) or _CONTROL.search(text):
        raise refuse("it is empty or holds characters a URL cannot have")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"it is not a valid URL ({exc})") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise refuse("it must be an https:// URL")
    if "@" in parts.netloc:
        raise refuse("it must not contain a user name or password")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise refuse("it must be just the address, without a path or parameters")
    if not host.isascii():
        raise refuse("the host name must be plain ASCII")
    if is_loopback(host):
        netloc = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{netloc}" + (f":{port}" if port else "")
    if parts.scheme != "https":
        raise refuse("plain http is only allowed for 127.0.0.1/localhost")
    if port is not None:
        raise refuse("it must not name a port")
    if not any(host == d or host.endswith("." + d) for d in ALLOWED_DOMAINS):
        allowed = ", ".join(ALLOWED_DOMAINS)
        raise refuse(f"the host is not under a Salesforce domain ({allowed})")
    return f"https://{host}"


def _classify_oauth(response: httpx.Response) -> ServiceError | None:
    """OAuth errors are {"error", "error_description"}; invalid_grant means log in again."""
    try:
        body = response_json(response)
    except ValueError:
        return None
    if not isinstance(body, dict) or "error" not in body:
        return None
    code = clean_text(body.get("error"), 60)
    description = clean_text(body.get("error_description") or "", 200)
    if response.status_code == 429 or code in ("rate_limit_exceeded",):
        return ServiceError(
            f"Salesforce is limiting logins ({description or code}); try again later.",
            service=SERVICE,
            category="rate_limit",
            retryable=True,
            status=response.status_code,
            code=code,
        )
    if response.status_code >= 500:
        return None
    if code == "invalid_grant":
        message = (
            f"Salesforce refused the saved login ({description or code}). "
            "Log in again: reminder-sync connect salesforce."
        )
    else:
        message = (
            f"Salesforce login failed: {code}"
            + (f" ({description})" if description else "")
            + ". Check the connected app settings and log in again."
        )
    return auth_error(message, code=code, status=response.status_code)


# ---------------------------------------------------------------------------------------------
# Token responses


@dataclass(frozen=True)
class TokenResponse:
    access_token: str = field(repr=False)
    instance_url: str
    identity_url: str | None = None
    refresh_token: str | None = field(default=None, repr=False)
    issued_at: str | None = None

    @classmethod
    def parse(cls, body: Any) -> TokenResponse:
        """Read a token response; the instance URL is validated before anything trusts it."""
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ServiceError(
                "Salesforce's token response was not understood (no access token). "
                "Check the login URL.",
                service=SERVICE,
                category="auth",
                code="MALFORMED_TOKEN_RESPONSE",
            )
        if not isinstance(body.get("instance_url"), str):
            raise ServiceError(
                "Salesforce's token response has no instance URL.",
                service=SERVICE,
                category="auth",
                code="MALFORMED_TOKEN_RESPONSE",
            )
        refresh = body.get("refresh_token")
        identity = body.get("id")
        return cls(
            access_token=body["access_token"],
            instance_url=validate_salesforce_url(body["instance_url"]),
            identity_url=identity if isinstance(identity, str) else None,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            issued_at=str(body["issued_at"]) if body.get("issued_at") is not None else None,
        )


def ids_from_identity_url(identity_url: str | None) -> tuple[str | None, str | None]:
    """(org id, user id) from an identity URL ending in /id/<org>/<user>."""
    if not identity_url:
        return None, None
    parts = [p for p in urlsplit(identity_url).path.split("/") if p]
    if len(parts) >= 3 and parts[-3] == "id":
        return clean_text(parts[-2], 18), clean_text(parts[-1], 18)
    return None, None


async def _token_request(
    http: httpx.AsyncClient, config: SalesforceAuthConfig, form: dict[str, str]
) -> TokenResponse:
    # Token requests are not idempotent (a rotated refresh token dies on first use), so `send`
    # replays them only when the failure proves Salesforce never saw them.
    response = await send(
        http,
        "POST",
        config.token_url,
        policy=AUTH_POLICY,
        idempotent=False,
        classify=_classify_oauth,
        service=SERVICE,
        data=form,
    )
    try:
        body = response_json(response)
    except ValueError:
        body = None
    return TokenResponse.parse(body)


def _auth_client(config: SalesforceAuthConfig) -> httpx.AsyncClient:
    return make_client(config.login_url, timeout=AUTH_POLICY.request_timeout)


# ---------------------------------------------------------------------------------------------
# The session


class SalesforceSession:
    """The live Salesforce login: instance URL, access token, single-flight refresh."""

    def __init__(
        self,
        config: SalesforceAuthConfig,
        store: SecretStore,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._http = http
        self._owns_http = http is None
        self._lock = asyncio.Lock()
        self._access_token: str | None = None
        self._instance_url: str | None = None
        self._identity_url: str | None = None
        self._loaded = False
        self.refreshes = 0  # how many new access tokens this session obtained

    def __repr__(self) -> str:
        return (
            f"SalesforceSession(instance_url={self._instance_url!r}, "
            f"method={self.config.method.value!r})"
        )

    # -- state ---------------------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        if self._instance_url is None:
            raise auth_error("Not logged in to Salesforce yet.", code="NOT_LOGGED_IN")
        return self._instance_url

    @property
    def org_id(self) -> str | None:
        return ids_from_identity_url(self._identity_url)[0]

    @property
    def user_id(self) -> str | None:
        return ids_from_identity_url(self._identity_url)[1]

    async def start(self) -> SalesforceSession:
        """Load the saved session; obtain a first access token if there is none."""
        await self._load()
        if self._access_token is None:
            async with self._lock:
                if self._access_token is None:
                    await self._obtain()
        return self

    async def _load(self) -> None:
        if self._loaded:
            return
        token = await read_secret(self._store, SECRET_ACCESS_TOKEN)
        instance = await read_secret(self._store, SECRET_INSTANCE_URL)
        self._identity_url = await read_secret(self._store, SECRET_IDENTITY_URL)
        if token and instance:
            self._instance_url = validate_salesforce_url(instance)
            self._access_token = token
        self._loaded = True

    async def headers(self) -> dict[str, str]:
        if self._access_token is None:
            await self.start()
        assert self._access_token is not None
        return {"Authorization": f"Bearer {self._access_token}"}

    def auth_hooks(
        self,
    ) -> tuple[Callable[[], Awaitable[dict[str, str]]], Callable[[], Awaitable[None]]]:
        """(headers_factory, on_unauthorized) for one `send` call.

        The pair remembers which token the request carried, so a 401 refreshes only if nobody
        else has already replaced that token (single flight across concurrent requests).
        """
        used: list[str | None] = [None]

        async def headers_factory() -> dict[str, str]:
            headers = await self.headers()
            used[0] = self._access_token
            return headers

        async def on_unauthorized() -> None:
            await self.refresh(stale_token=used[0])

        return headers_factory, on_unauthorized

    async def refresh(self, stale_token: str | None = None) -> None:
        """Get a new access token, unless `stale_token` was already replaced meanwhile."""
        async with self._lock:
            if stale_token is not None and self._access_token not in (None, stale_token):
                return
            await self._obtain()

    # -- obtaining tokens --------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = _auth_client(self.config)
        return self._http

    async def _obtain(self) -> None:
        method = self.config.method
        if method is AuthMethod.PKCE:
            refresh_token = await read_secret(self._store, SECRET_REFRESH_TOKEN)
            if not refresh_token:
                raise auth_error(
                    "No saved Salesforce login. Log in: reminder-sync connect salesforce.",
                    code="NOT_LOGGED_IN",
                )
            form = {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.config.client_id,
            }
            client_secret = await read_secret(self._store, SECRET_CLIENT_SECRET)
            if client_secret:
                form["client_secret"] = client_secret
        elif method is AuthMethod.CLIENT_CREDENTIALS:
            form = await client_credentials_form(self.config, self._store)
        else:
            form = await jwt_bearer_form(self.config, self._store)
        tokens = await _token_request(self._client(), self.config, form)
        await self.adopt(tokens)

    async def adopt(self, tokens: TokenResponse) -> None:
        """Save `tokens`, then use them. A rotated refresh token is saved first of all."""
        if tokens.refresh_token:
            await write_secret(self._store, SECRET_REFRESH_TOKEN, tokens.refresh_token)
        await write_secret(self._store, SECRET_INSTANCE_URL, tokens.instance_url)
        if tokens.identity_url:
            await write_secret(self._store, SECRET_IDENTITY_URL, tokens.identity_url)
        await write_secret(self._store, SECRET_ACCESS_TOKEN, tokens.access_token)
        self._instance_url = tokens.instance_url
        self._identity_url = tokens.identity_url or self._identity_url
        self._access_token = tokens.access_token
        self._loaded = True
        self.refreshes += 1
        log.info("Salesforce session ready for %s", tokens.instance_url)

    async def logout(self) -> None:
        """Revoke the refresh token (or access token) if possible, then forget the session."""
        token = await read_secret(self._store, SECRET_REFRESH_TOKEN) or self._access_token
        if token:
            try:
                await send(
                    self._client(),
                    "POST",
                    self.config.revoke_url,
                    policy=RetryPolicy(attempts=1, request_timeout=10.0),
                    idempotent=True,
                    classify=_classify_oauth,
                    service=SERVICE,
                    data={"token": token},
                )
            except ServiceError as exc:  # forgetting locally matters more than revoking
                log.warning("could not revoke the Salesforce token: %s", exc)
        for key in SESSION_SECRETS:
            await forget_secret(self._store, key)
        self._access_token = None
        self._instance_url = None
        self._identity_url = None

    async def aclose(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None


# ---------------------------------------------------------------------------------------------
# Client credentials and JWT bearer


async def client_credentials_form(
    config: SalesforceAuthConfig, store: SecretStore
) -> dict[str, str]:
    client_secret = await read_secret(store, SECRET_CLIENT_SECRET)
    if not client_secret:
        raise auth_error(
            "The client-credentials flow needs the connected app's client secret; "
            "run: reminder-sync connect salesforce --auth client-credentials --secret-stdin.",
            code="NOT_LOGGED_IN",
        )
    return {
        "grant_type": "client_credentials",
        "client_id": config.client_id,
        "client_secret": client_secret,
    }


def make_jwt_assertion(config: SalesforceAuthConfig, private_key_pem: str, now: float) -> str:
    """An RS256 JWT: iss = client id, sub = username, aud = login URL, exp = now + 3 minutes."""
    claims = {
        "iss": config.client_id,
        "sub": config.username,
        "aud": config.jwt_audience or config.login_url,
        "exp": int(now) + JWT_LIFETIME_SECONDS,
    }
    try:
        return jwt.encode(claims, private_key_pem, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise auth_error(
            f"The saved JWT private key cannot sign ({type(exc).__name__}); "
            "save an RSA private key in PEM form.",
            code="BAD_PRIVATE_KEY",
        ) from None


async def jwt_bearer_form(config: SalesforceAuthConfig, store: SecretStore) -> dict[str, str]:
    private_key = await read_secret(store, SECRET_PRIVATE_KEY)
    if not private_key:
        raise auth_error(
            "The JWT bearer flow needs the private key of the connected app's certificate; "
            "run: reminder-sync connect salesforce --auth jwt --secret-stdin.",
            code="NOT_LOGGED_IN",
        )
    assertion = make_jwt_assertion(config, private_key, time.time())
    return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}


async def login_headless(
    config: SalesforceAuthConfig, store: SecretStore, *, http: httpx.AsyncClient | None = None
) -> SalesforceSession:
    """Log in with client credentials or JWT bearer (secrets already in the store)."""
    if config.method is AuthMethod.PKCE:
        raise auth_error("The PKCE flow is interactive: use PkceLogin.", code="CONFIG")
    session = SalesforceSession(config, store, http=http)
    async with session._lock:
        await session._obtain()
    return session


# ---------------------------------------------------------------------------------------------
# PKCE web-server flow


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>reminder-sync</title></head>"
    "<body><p>{}</p></body></html>"
)


class PkceLogin:
    """One interactive login: a loopback listener, the authorize URL, the code exchange.

        login = await PkceLogin.start(config, store)
        print(login.authorize_url)          # also open it in a browser
        session = await login.complete(timeout=300)

    The connected app's callback URL must be exactly `redirect_uri`
    (http://127.0.0.1:1717/OauthRedirect by default). Cancelling `complete` closes the listener.
    """

    def __init__(
        self,
        config: SalesforceAuthConfig,
        store: SecretStore,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._http = http
        self._verifier, self._challenge = pkce_pair()
        self._state = secrets.token_urlsafe(24)
        self._code: asyncio.Future[str] | None = None
        self._server: asyncio.Server | None = None
        self.redirect_uri = ""

    @classmethod
    async def start(
        cls,
        config: SalesforceAuthConfig,
        store: SecretStore,
        *,
        port: int = DEFAULT_REDIRECT_PORT,
        http: httpx.AsyncClient | None = None,
    ) -> PkceLogin:
        login = cls(config, store, http=http)
        await login._listen(port)
        return login

    async def _listen(self, port: int) -> None:
        self._code = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        except OSError as exc:
            raise auth_error(
                f"Cannot listen on 127.0.0.1:{port} for the login redirect ({exc.strerror}). "
                "Close what uses that port, or choose another one that the connected app "
                "allows as callback URL.",
                code="REDIRECT_PORT_BUSY",
            ) from None
        bound = self._server.sockets[0].getsockname()[1]
        self.redirect_uri = f"http://127.0.0.1:{bound}{REDIRECT_PATH}"

    @property
    def authorize_url(self) -> str:
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": self._challenge,
            "code_challenge_method": "S256",
            "state": self._state,
        }
        if self.config.scope:
            query["scope"] = self.config.scope
        return f"{self.config.authorize_url}?{urlencode(query)}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request_line = await reader.readline()
                while (await reader.readline()).strip():  # skip headers
                    pass
            status, text = self._accept(request_line.decode("latin-1"))
        except (TimeoutError, ConnectionError, UnicodeError):
            writer.close()
            return
        body = _PAGE.format(text).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            "Cache-Control: no-store\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def _accept(self, request_line: str) -> tuple[str, str]:
        """Check one request to the listener; resolve the code future when it is the redirect."""
        parts = request_line.split(" ")
        target = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("")
        if parts[0] != "GET" or target.path != REDIRECT_PATH:
            return "404 Not Found", "Not found."
        params = {k: v[0] for k, v in parse_qs(target.query).items()}
        assert self._code is not None
        if self._code.done():
            return "409 Conflict", "This login has already finished; you can close this window."
        if not hmac.compare_digest(params.get("state", ""), self._state):
            # Not our login (or forged): ignore it and keep waiting for the real redirect.
            log.warning("login redirect with a wrong state ignored")
            return "400 Bad Request", "This login link does not belong to this session."
        if "error" in params:
            code = clean_text(params["error"], 60)
            description = clean_text(params.get("error_description", ""), 200)
            self._code.set_exception(
                auth_error(
                    f"Salesforce login was not approved: {code}"
                    + (f" ({description})" if description else ""),
                    code=code,
                )
            )
            return "200 OK", "Login was not approved. You can close this window."
        code = params.get("code")
        if not code:
            return "400 Bad Request", "The redirect carries no authorization code."
        self._code.set_result(code)
        return "200 OK", "Logged in to Salesforce. You can close this window."

    async def wait_for_code(self, timeout: float = 300.0) -> str:
        assert self._code is not None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._code)
        except TimeoutError:
            raise auth_error(
                f"No login arrived within {timeout:g} s; run the login again.", code="LOGIN_TIMEOUT"
            ) from None
        finally:
            await self.close()

    async def complete(self, timeout: float = 300.0) -> SalesforceSession:
        """Wait for the redirect, exchange code + verifier, save the tokens, return a session."""
        code = await self.wait_for_code(timeout)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self.config.client_id,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self._verifier,
        }
        client_secret = await read_secret(self._store, SECRET_CLIENT_SECRET)
        if client_secret:
            form["client_secret"] = client_secret
        http = self._http or _auth_client(self.config)
        try:
            tokens = await _token_request(http, self.config, form)
        finally:
            if self._http is None:
                await http.aclose()
        if not tokens.refresh_token:
            # Never keep an older login's refresh token beside this login's access token.
            await forget_secret(self._store, SECRET_REFRESH_TOKEN)
            log.warning("Salesforce returned no refresh token; add the refresh_token scope")
        session = SalesforceSession(self.config, self._store, http=self._http)
        await session.adopt(tokens)
        return session

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._code is not None and not self._code.done():
            self._code.cancel()

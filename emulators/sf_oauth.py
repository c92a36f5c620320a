"""OAuth 2.0 endpoints of the emulated org (it is its own login host).

- ``GET /services/oauth2/authorize``: web-server flow; PKCE S256 ``code_challenge`` required
  (``require_pkce``). Shows an approval page whose form POSTs back to the same path with
  ``decision=allow`` (or ``deny``) and the original parameters as hidden fields; the answer is a
  302 to ``redirect_uri`` with ``code`` and ``state``. ``redirect_uri`` must be a loopback
  ``http://`` URL (or one of ``callback_urls``).
- ``POST /services/oauth2/token`` (form): ``authorization_code`` (+ ``code_verifier``,
  ``redirect_uri``; ``client_secret`` optional but checked when given), ``refresh_token``
  (rotation when configured: the old refresh token dies at once), ``client_credentials``,
  ``password``, ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (RS256, iss = client_id,
  sub = username, aud = this server or login/test.salesforce.com, exp within 5 minutes).
- ``POST|GET /services/oauth2/revoke`` (``token``): revoking a refresh token ends its access
  tokens too.
- ``GET /services/oauth2/userinfo`` and the identity URL ``/id/{orgId}/{userId}`` (Bearer).

Token responses have Salesforce's shape: access_token, (refresh_token), signature (HMAC-SHA256
of id + issued_at keyed by the client secret), scope, instance_url, id, token_type, issued_at;
no expires_in. Errors are ``{"error", "error_description"}``. Tokens expire on the emulator's
clock after ``access_token_lifetime_seconds``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from emulators.sf_config import SalesforceEmulatorConfig
from emulators.sf_errors import OAuthError

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CODE_LIFETIME = timedelta(minutes=15)
JWT_MAX_FUTURE = timedelta(minutes=5)
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass
class AccessToken:
    value: str
    user_id: str
    client_id: str
    expires_at: datetime
    refresh: str | None
    revoked: bool = False


@dataclass
class RefreshToken:
    value: str
    user_id: str
    client_id: str
    active: bool = True


@dataclass
class AuthCode:
    value: str
    client_id: str
    redirect_uri: str
    challenge: str | None
    expires_at: datetime
    used: bool = False


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the only encoding the endpoints accept)."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OAuthServer:
    def __init__(
        self,
        config: SalesforceEmulatorConfig,
        clock: Callable[[], datetime],
        callback_urls: tuple[str, ...] = (),
    ):
        self.config = config
        self.clock = clock
        self.callback_urls = callback_urls
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self.auto_approve = False

    def reset(self) -> None:
        self.access.clear()
        self.refresh.clear()
        self.codes.clear()

    # ------------------------------------------------------------------ tokens

    def issue_access_token(self, user_id: str | None = None, refresh: str | None = None) -> str:
        """A valid access token for the configured user (tests use it to skip the login)."""
        value = f"{self.config.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        lifetime = timedelta(seconds=self.config.access_token_lifetime_seconds)
        self.access[value] = AccessToken(
            value,
            user_id or self.config.user_id,
            self.config.client_id,
            self.clock() + lifetime,
            refresh,
        )
        return value

    def _issue_refresh_token(self, user_id: str) -> str:
        value = "5Aep" + secrets.token_urlsafe(64)
        self.refresh[value] = RefreshToken(value, user_id, self.config.client_id)
        return value

    def check_access_token(self, value: str | None) -> AccessToken | None:
        token = self.access.get(value or "")
        if token is None or token.revoked or token.expires_at <= self.clock():
            return None
        return token

    def expire(self, value: str) -> None:
        token = self.access.get(value)
        if token:
            token.expires_at = self.clock()

    @staticmethod
    def bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip()
        return None

    def _token_response(
        self, request: Request, user_id: str, family: str | None = None, *, show: bool = False
    ) -> JSONResponse:
        """``family`` ties the access token to a refresh token; ``show`` returns that token."""
        base = str(request.base_url).rstrip("/")
        issued_at = str(int(self.clock().timestamp() * 1000))
        identity = f"{base}/id/{self.config.org_id}/{user_id}"
        signature = base64.b64encode(
            hmac.new(
                self.config.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
            ).digest()
        ).decode()
        body = {
            "access_token": self.issue_access_token(user_id, family),
            "signature": signature,
            "scope": "refresh_token api id" if family else "api id",
            "instance_url": base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        if show and family:
            body = {"access_token": body.pop("access_token"), "refresh_token": family, **body}
        return JSONResponse(body, headers={"Cache-Control": "no-cache,must-revalidate,no-store"})

    # ------------------------------------------------------------------ /token

    async def token(self, request: Request) -> Response:
        try:
            form = await read_form(request)
            grant = form.get("grant_type", "")
            handlers = {
                "authorization_code": self._grant_code,
                "refresh_token": self._grant_refresh,
                "client_credentials": self._grant_client_credentials,
                "password": self._grant_password,
                JWT_GRANT: self._grant_jwt,
            }
            if grant not in handlers:
                raise OAuthError(400, "unsupported_grant_type", "grant type not supported")
            return handlers[grant](request, form)
        except OAuthError as error:
            return error.response()

    def _check_client(self, form: dict, *, secret_required: bool) -> None:
        if form.get("client_id") != self.config.client_id:
            raise OAuthError(400, "invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        if secret is None and secret_required:
            raise OAuthError(400, "invalid_client", "invalid client credentials")
        if secret is not None and not hmac.compare_digest(secret, self.config.client_secret):
            raise OAuthError(400, "invalid_client", "invalid client credentials")

    def _grant_code(self, request: Request, form: dict) -> Response:
        self._check_client(form, secret_required=False)
        code = self.codes.get(form.get("code", ""))
        if code is None or code.used or code.client_id != form.get("client_id"):
            raise OAuthError(400, "invalid_grant", "invalid authorization code")
        if code.expires_at <= self.clock():
            raise OAuthError(400, "invalid_grant", "expired authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "redirect_uri must match configuration")
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier or not hmac.compare_digest(_pkce_challenge(verifier), code.challenge):
                raise OAuthError(400, "invalid_grant", "invalid code verifier")
        code.used = True
        refresh = self._issue_refresh_token(self.config.user_id)
        return self._token_response(request, self.config.user_id, refresh, show=True)

    def _grant_refresh(self, request: Request, form: dict) -> Response:
        self._check_client(form, secret_required=False)
        token = self.refresh.get(form.get("refresh_token", ""))
        if token is None or not token.active:
            raise OAuthError(400, "invalid_grant", "expired access/refresh token")
        if self.config.rotate_refresh_tokens:
            token.active = False
            new_refresh = self._issue_refresh_token(token.user_id)
            return self._token_response(request, token.user_id, new_refresh, show=True)
        return self._token_response(request, token.user_id, token.value)

    def _grant_client_credentials(self, request: Request, form: dict) -> Response:
        self._check_client(form, secret_required=True)
        return self._token_response(request, self.config.user_id)

    def _grant_password(self, request: Request, form: dict) -> Response:
        self._check_client(form, secret_required=True)
        if form.get("username") != self.config.username or not hmac.compare_digest(
            form.get("password", ""), self.config.password
        ):
            raise OAuthError(400, "invalid_grant", "authentication failure")
        return self._token_response(request, self.config.user_id)

    def _grant_jwt(self, request: Request, form: dict) -> Response:
        key = self.config.jwt_public_key_pem
        assertion = form.get("assertion", "")
        if not key or not assertion:
            raise OAuthError(400, "invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False, "require": ["exp"]},
            )
        except jwt.PyJWTError:
            raise OAuthError(400, "invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.config.client_id:
            raise OAuthError(400, "invalid_client_id", "client identifier invalid")
        own = str(request.base_url).rstrip("/")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not any(str(a).rstrip("/") in (own, *LOGIN_AUDIENCES) for a in audiences):
            raise OAuthError(400, "invalid_grant", "audience is invalid")
        now = self.clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now.timestamp():
            raise OAuthError(400, "invalid_grant", "expired authorization code")
        if exp > (now + JWT_MAX_FUTURE).timestamp() + 5:
            raise OAuthError(400, "invalid_grant", "invalid assertion")
        if claims.get("sub") != self.config.username:
            raise OAuthError(400, "invalid_grant", "user hasn't approved this consumer")
        return self._token_response(request, self.config.user_id)

    # ------------------------------------------------------------------ /revoke

    async def revoke(self, request: Request) -> Response:
        if request.method == "POST":
            value = (await read_form(request)).get("token", "")
        else:
            value = request.query_params.get("token", "")
        if value in self.refresh:
            self.refresh[value].active = False
            for token in self.access.values():
                if token.refresh == value:
                    token.revoked = True
            return Response(status_code=200)
        if value in self.access:
            self.access[value].revoked = True
            return Response(status_code=200)
        return OAuthError(400, "invalid_token", "invalid token").response()

    # ------------------------------------------------------------------ /authorize

    def _redirect_allowed(self, redirect_uri: str) -> bool:
        if self.callback_urls:
            return redirect_uri in self.callback_urls
        return _is_loopback_http(redirect_uri)

    def _redirect(self, redirect_uri: str, params: dict) -> RedirectResponse:
        joiner = "&" if urlsplit(redirect_uri).query else "?"
        clean = {k: v for k, v in params.items() if v is not None}
        return RedirectResponse(redirect_uri + joiner + urlencode(clean), status_code=302)

    async def authorize(self, request: Request) -> Response:
        if request.method == "POST":
            params = await read_form(request)
        else:
            params = dict(request.query_params)
        if params.get("client_id") != self.config.client_id:
            return _error_page("invalid_client_id", "client identifier invalid")
        redirect_uri = params.get("redirect_uri", "")
        if not self._redirect_allowed(redirect_uri):
            return _error_page("redirect_uri_mismatch", "redirect_uri must match configuration")
        state = params.get("state")
        if params.get("response_type") != "code":
            return self._redirect(
                redirect_uri,
                {"error": "unsupported_response_type", "error_description": "response type "
                 "not supported", "state": state},
            )  # fmt: skip
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "S256")
        if challenge is None and self.config.require_pkce:
            return self._redirect(
                redirect_uri,
                {"error": "invalid_request", "error_description": "missing required code "
                 "challenge", "state": state},
            )  # fmt: skip
        if challenge is not None and method != "S256":
            return self._redirect(
                redirect_uri,
                {"error": "invalid_request", "error_description": "invalid code challenge "
                 "method", "state": state},
            )  # fmt: skip
        if request.method == "GET" and not self.auto_approve:
            return _approval_page(params, self.config.username)
        if request.method == "POST" and params.get("decision") != "allow":
            return self._redirect(
                redirect_uri,
                {"error": "access_denied", "error_description": "end-user denied authorization",
                 "state": state},
            )  # fmt: skip
        code = "aPrx" + secrets.token_urlsafe(48)
        self.codes[code] = AuthCode(
            code, self.config.client_id, redirect_uri, challenge, self.clock() + CODE_LIFETIME
        )
        return self._redirect(redirect_uri, {"code": code, "state": state})

    # ------------------------------------------------------------------ identity

    def identity(self, request: Request, token: AccessToken) -> dict:
        base = str(request.base_url).rstrip("/")
        cfg = self.config
        version = cfg.latest_version
        first, _, last = cfg.user_full_name.partition(" ")
        return {
            "id": f"{base}/id/{cfg.org_id}/{token.user_id}",
            "asserted_user": True,
            "user_id": token.user_id,
            "organization_id": cfg.org_id,
            "username": cfg.username,
            "nick_name": cfg.username.split("@")[0],
            "display_name": cfg.user_full_name,
            "email": cfg.user_email,
            "email_verified": True,
            "first_name": first,
            "last_name": last or first,
            "timezone": cfg.user_time_zone,
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "enterprise": f"{base}/services/Soap/c/{version}/{cfg.org_id}",
                "rest": f"{base}/services/data/v{version}/",
                "sobjects": f"{base}/services/data/v{version}/sobjects/",
                "query": f"{base}/services/data/v{version}/query/",
                "limits": f"{base}/services/data/v{version}/limits/",
                "profile": f"{base}/{token.user_id}",
            },
            "is_app_installed": True,
        }

    async def userinfo(self, request: Request) -> Response:
        token = self.check_access_token(self.bearer(request))
        if token is None:
            return PlainTextResponse("Bad_OAuth_Token", status_code=403)
        info = self.identity(request, token)
        return JSONResponse(
            {
                "sub": info["id"],
                "user_id": info["user_id"],
                "organization_id": info["organization_id"],
                "preferred_username": info["username"],
                "nickname": info["nick_name"],
                "name": info["display_name"],
                "email": info["email"],
                "email_verified": True,
                "given_name": info["first_name"],
                "family_name": info["last_name"],
                "zoneinfo": info["timezone"],
                "active": True,
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_US",
                "utcOffset": 0,
                "urls": info["urls"],
            }
        )

    async def identity_url(self, request: Request) -> Response:
        token = self.check_access_token(self.bearer(request))
        if token is None:
            return PlainTextResponse("Bad_OAuth_Token", status_code=403)
        org, user = request.path_params["org_id"], request.path_params["user_id"]
        if org != self.config.org_id or user != token.user_id:
            return PlainTextResponse("Bad_Id", status_code=403)
        return JSONResponse(self.identity(request, token))


def _error_page(error: str, description: str) -> HTMLResponse:
    body = (
        "<!DOCTYPE html><html><head><title>Error</title></head><body>"
        f"<p>error={html.escape(error)}&amp;error_description={html.escape(description)}</p>"
        "</body></html>"
    )
    return HTMLResponse(body, status_code=400)


def _approval_page(params: dict, username: str) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k != "decision"
    )
    body = (
        "<!DOCTYPE html><html><head><title>Allow Access?</title></head><body>"
        "<h1>Allow Access?</h1>"
        f"<p>reminder-sync emulator: signed in as {html.escape(username)}. The app asks to "
        "access your basic information and manage your data.</p>"
        f'<form method="POST" action="/services/oauth2/authorize">{hidden}'
        '<button type="submit" name="decision" value="allow" id="oaapprove">Allow</button>'
        '<button type="submit" name="decision" value="deny" id="oadeny">Deny</button>'
        "</form></body></html>"
    )
    return HTMLResponse(body)

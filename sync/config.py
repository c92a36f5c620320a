"""Connection settings: the non-secret half of each login (URLs, client id, user).

These live in the state file (`StateStore.connection`); every secret (tokens, client secrets,
private keys) lives in the SecretStore under the names below. URLs are checked before use: plain
http only for loopback hosts (the emulators), https on an expected host otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sync.model import Side

# Secret names of Sales Connect (Salesforce's are in sync.connectors.salesforce_auth).
SC_CLIENT_SECRET = "salesconnect.client_secret"
SC_ACCESS_TOKEN = "salesconnect.access_token"
SC_SECRETS = (SC_CLIENT_SECRET, SC_ACCESS_TOKEN)

# Hosts a real Sales Connect API may live on (Marketo Sales Connect, formerly ToutApp).
SC_ALLOWED_DOMAINS: tuple[str, ...] = ("toutapp.com", "marketo.com", "marketo.net")
# The contract's token endpoint, under the API root (docs/salesconnect-api.md).
SC_DEFAULT_TOKEN_PATH = "/oauth/token"


class ConfigError(Exception):
    """A setting that cannot be used; the message says what to change."""


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, what: str, allowed_domains: tuple[str, ...] | None = None) -> str:
    """`url` without a trailing slash, or ConfigError: http only on loopback, else https
    (on one of `allowed_domains` when given), never with a user name or password."""
    text = str(url).strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(f"{what} {text!r} is not a valid URL ({exc}).") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{what} {text!r} must be an https:// URL.")
    if "@" in parts.netloc:
        raise ConfigError(f"{what} must not contain a user name or password.")
    if parts.query or parts.fragment:
        raise ConfigError(f"{what} must not carry parameters (?...) or a fragment (#...).")
    if _is_loopback(host):
        return text.rstrip("/")
    if parts.scheme != "https":
        raise ConfigError(
            f"{what} {text!r} uses plain http, which is only allowed for 127.0.0.1/localhost; "
            "use https."
        )
    if allowed_domains and not any(host == d or host.endswith("." + d) for d in allowed_domains):
        raise ConfigError(
            f"{what} host {host!r} is not an expected host ({', '.join(allowed_domains)})."
        )
    return text.rstrip("/")


@dataclass(frozen=True)
class SalesforceConnection:
    """How to log in to Salesforce again (the tokens are in the keyring)."""

    login_url: str
    client_id: str
    auth: str = "pkce"  # pkce | client-credentials | jwt
    username: str | None = None
    user_id: str | None = None
    instance_url: str | None = None
    external_id_field: str | None = None  # Task external-id field for correlation keys

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SalesforceConnection:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class SalesConnectConnection:
    """How to reach Sales Connect (the client secret is in the keyring)."""

    base_url: str
    client_id: str
    token_url: str
    user_id: str | None = None
    username: str | None = None

    # The state store refuses keys that look like secrets ("token..."), so the token endpoint
    # is saved under a neutral name.
    _STORED_NAMES: ClassVar[Mapping[str, str]] = {"token_url": "auth_endpoint"}

    def as_dict(self) -> dict[str, Any]:
        return {self._STORED_NAMES.get(k, k): v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SalesConnectConnection:
        renamed = {v: k for k, v in cls._STORED_NAMES.items()}
        values = {renamed.get(k, k): v for k, v in data.items()}
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        return cls(**known)


def default_token_url(base_url: str) -> str:
    return base_url.rstrip("/") + SC_DEFAULT_TOKEN_PATH


def load_connection(store: Any, side: Side) -> SalesforceConnection | SalesConnectConnection | None:
    """The saved connection of one side, or None when it was never set up."""
    data = store.connection(side)
    if not data:
        return None
    try:
        if side is Side.SALESFORCE:
            return SalesforceConnection.from_dict(data)
        return SalesConnectConnection.from_dict(data)
    except TypeError as exc:
        raise ConfigError(
            f"The saved {side.label} connection is incomplete ({exc}); connect again."
        ) from None

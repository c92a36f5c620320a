"""Logging in, and reaching both services from the saved connections.

`connect_salesforce` / `connect_salesconnect` log in once (secrets go to the SecretStore, the rest
to the state file); `ServiceLinks` rebuilds both connectors from that on every start;
`logout` forgets a service's tokens.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sync import paths
from sync.config import (
    SC_ACCESS_TOKEN,
    SC_ALLOWED_DOMAINS,
    SC_CLIENT_SECRET,
    SC_SECRETS,
    ConfigError,
    SalesConnectConnection,
    SalesforceConnection,
    check_url,
    default_token_url,
    load_connection,
)
from sync.connectors.http import ServiceError
from sync.model import Side
from sync.sides import SalesConnectSide, SalesforceSide
from sync.store import StateStore

log = logging.getLogger(__name__)

# The Task custom field that carries correlation keys when the org has it (Text(255), External
# ID, unique). Optional: without it, journaled creates are found again by content.
DEFAULT_EXTERNAL_ID_FIELD = "ReminderSync_Key__c"


class RevealingSecrets:
    """The SecretStore as the connectors want it: plain strings in, plain strings out.

    `sync.secrets` hands out `Secret` wrappers; the Salesforce session puts values straight into
    form bodies, so it gets the revealed value (at the one place it is sent).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def get(self, name: str) -> str | None:
        value = await self._inner.get(name)
        if value is None:
            return None
        reveal = getattr(value, "reveal", None)
        return reveal() if callable(reveal) else str(value)

    async def set(self, name: str, value: Any) -> None:
        await self._inner.set(name, value)

    async def delete(self, name: str) -> None:
        await self._inner.delete(name)

    def __repr__(self) -> str:
        return f"RevealingSecrets({self._inner!r})"


def _sf_auth_config(conn: SalesforceConnection) -> Any:
    from sync.connectors.salesforce_auth import SalesforceAuthConfig

    return SalesforceAuthConfig(
        login_url=conn.login_url,
        client_id=conn.client_id,
        method=conn.auth,
        username=conn.username,
    )


def _sc_client(conn: SalesConnectConnection, secrets: Any, transport: Any = None) -> Any:
    from sync.connectors.salesconnect import SalesConnectClient

    return SalesConnectClient.from_connection(
        base_url=conn.base_url,
        token_url=conn.token_url,
        client_id=conn.client_id,
        secrets=RevealingSecrets(secrets),
        transport=transport,
    )


class ServiceLinks:
    """Both connectors, built from the saved connections on first use."""

    def __init__(self, store: StateStore, secrets: Any, *, transports: dict[str, Any]) -> None:
        self.store = store
        self.secrets = secrets
        self.transports = transports
        self._closers: list[Any] = []

    def connected(self) -> dict[str, bool]:
        return {
            Side.SALESCONNECT.value: bool(self.store.connection(Side.SALESCONNECT)),
            Side.SALESFORCE.value: bool(self.store.connection(Side.SALESFORCE)),
        }

    async def open_sides(self) -> tuple[SalesConnectSide, SalesforceSide]:
        sc_conn = load_connection(self.store, Side.SALESCONNECT)
        sf_conn = load_connection(self.store, Side.SALESFORCE)
        missing = []
        if sf_conn is None:
            missing.append("Salesforce (reminder-sync connect salesforce ...)")
        if sc_conn is None:
            missing.append("Sales Connect (reminder-sync connect salesconnect ...)")
        if missing:
            raise ConfigError("Not connected to " + " and ".join(missing) + ".")
        assert isinstance(sc_conn, SalesConnectConnection)
        assert isinstance(sf_conn, SalesforceConnection)
        from sync.connectors.salesforce import SalesforceClient
        from sync.connectors.salesforce_auth import SalesforceSession

        session = SalesforceSession(_sf_auth_config(sf_conn), RevealingSecrets(self.secrets))
        sf_client = SalesforceClient(session, transport=self.transports.get("salesforce"))
        sc_client = _sc_client(sc_conn, self.secrets, self.transports.get("salesconnect"))
        self._closers += [sf_client, session, sc_client]
        sf_side = SalesforceSide(sf_client, external_id_field=sf_conn.external_id_field)
        return SalesConnectSide(sc_client), sf_side

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        for closer in closers:
            with contextlib.suppress(Exception):
                await closer.aclose()


async def detect_external_id_field(
    client: Any, field_name: str = DEFAULT_EXTERNAL_ID_FIELD
) -> str | None:
    """The org's correlation-key field if Task has it (a probe query), else None."""
    try:
        await client.find_by_external_id(field_name, ["reminder-sync-probe"])
    except ServiceError as exc:
        if exc.category in ("validation", "not_found"):
            return None
        raise
    return field_name


@contextlib.contextmanager
def _state(home: Path | None, store: StateStore | None) -> Iterator[StateStore]:
    """The caller's open store (a running engine holds the lock), or one opened here."""
    if store is not None:
        yield store
        return
    opened = StateStore.open(paths.state_file(home))
    try:
        yield opened
    finally:
        opened.close()


async def connect_salesforce(
    secrets: Any,
    *,
    login_url: str,
    client_id: str,
    auth: str = "pkce",
    secret: str | None = None,
    username: str | None = None,
    announce: Callable[[str], None] = print,
    home: Path | None = None,
    store: StateStore | None = None,
    transport: Any = None,
    redirect_port: int | None = None,
    open_browser: bool = True,
) -> str:
    """Log in to Salesforce and save the connection; returns "user@instance" for a message."""
    from sync.connectors.salesforce import SalesforceClient
    from sync.connectors.salesforce_auth import (
        SECRET_CLIENT_SECRET,
        SECRET_PRIVATE_KEY,
        SESSION_SECRETS,
        AuthMethod,
        PkceLogin,
        SalesforceAuthConfig,
        login_headless,
    )

    with _state(home, store) as state:
        config = SalesforceAuthConfig(
            login_url=login_url, client_id=client_id, method=AuthMethod(auth), username=username
        )
        plain = RevealingSecrets(secrets)
        for name in SESSION_SECRETS:  # a new login replaces the old session entirely
            await plain.delete(name)
        if auth == AuthMethod.CLIENT_CREDENTIALS.value and secret:
            await plain.set(SECRET_CLIENT_SECRET, secret)
        elif auth == AuthMethod.JWT.value and secret:
            await plain.set(SECRET_PRIVATE_KEY, secret)
        elif auth == AuthMethod.PKCE.value and secret:
            await plain.set(SECRET_CLIENT_SECRET, secret)  # for connected apps that want one
        if auth == AuthMethod.PKCE.value:
            kwargs = {"port": redirect_port} if redirect_port is not None else {}
            login = await PkceLogin.start(config, plain, **kwargs)
            try:
                announce(login.authorize_url)
                if open_browser:
                    with contextlib.suppress(Exception):
                        import webbrowser

                        webbrowser.open(login.authorize_url)
                session = await login.complete()
            finally:
                await login.close()
        else:
            session = await login_headless(config, plain)
        client = SalesforceClient(session, transport=transport)
        try:
            user_id = await client.user_id()
            external = await detect_external_id_field(client)
        finally:
            await client.aclose()
            await session.aclose()
        conn = SalesforceConnection(
            login_url=config.login_url,
            client_id=client_id,
            auth=auth,
            username=username,
            user_id=user_id,
            instance_url=session.instance_url,
            external_id_field=external,
        )
        state.put_connection(Side.SALESFORCE, conn.as_dict())
        state.audit("connect", f"connected to Salesforce ({session.instance_url})")
        state.save()
        return f"{user_id} on {session.instance_url}"


async def connect_salesconnect(
    secrets: Any,
    *,
    base_url: str,
    client_id: str,
    token_url: str | None,
    secret: str,
    home: Path | None = None,
    store: StateStore | None = None,
    transport: Any = None,
) -> str:
    """Check the client credentials against Sales Connect and save the connection."""
    base_url = check_url(
        base_url, what="Sales Connect base URL", allowed_domains=SC_ALLOWED_DOMAINS
    )
    token_url = check_url(
        token_url or default_token_url(base_url),
        what="Sales Connect token URL",
        allowed_domains=SC_ALLOWED_DOMAINS,
    )
    from sync.connectors.salesconnect import SalesConnectClient

    with _state(home, store) as state:
        # Check the credentials first; nothing is kept unless they work.
        client = SalesConnectClient(
            base_url,
            client_id=client_id,
            client_secret=secret,
            token_url=token_url,
            transport=transport,
        )
        try:
            user_id = await client.me()
        finally:
            await client.aclose()
        await secrets.delete(SC_ACCESS_TOKEN)
        await secrets.set(SC_CLIENT_SECRET, secret)
        conn = SalesConnectConnection(
            base_url=base_url, client_id=client_id, token_url=token_url, user_id=user_id
        )
        state.put_connection(Side.SALESCONNECT, conn.as_dict())
        state.audit("connect", f"connected to Sales Connect ({base_url})")
        state.save()
        return f"{user_id} on {base_url}"


async def logout(
    secrets: Any,
    services: list[str],
    *,
    home: Path | None = None,
    store: StateStore | None = None,
) -> None:
    """Forget tokens (and the saved connection) of each named service. Salesforce is asked to
    revoke its token first (best effort: forgetting locally matters more)."""
    from sync.connectors.salesforce_auth import (
        SECRET_CLIENT_SECRET,
        SECRET_PRIVATE_KEY,
        SESSION_SECRETS,
        SalesforceSession,
    )

    with _state(home, store) as state:
        for service in services:
            side = Side(service)
            if side is Side.SALESFORCE:
                conn = load_connection(state, side)
                if isinstance(conn, SalesforceConnection):
                    session = SalesforceSession(_sf_auth_config(conn), RevealingSecrets(secrets))
                    try:
                        await session.start()  # loads the saved tokens to revoke them
                        await session.logout()
                    except Exception as exc:  # never let a revoke failure keep the tokens
                        log.warning("Salesforce token not revoked: %s", type(exc).__name__)
                    finally:
                        await session.aclose()
                names = (*SESSION_SECRETS, SECRET_CLIENT_SECRET, SECRET_PRIVATE_KEY)
            else:
                names = SC_SECRETS
            for name in names:
                await secrets.delete(name)
            state.delete_connection(side)
            state.audit("logout", f"logged out of {side.label}")
        state.save()


__all__ = [
    "DEFAULT_EXTERNAL_ID_FIELD",
    "ConfigError",
    "RevealingSecrets",
    "ServiceLinks",
    "connect_salesconnect",
    "connect_salesforce",
    "detect_external_id_field",
    "logout",
]

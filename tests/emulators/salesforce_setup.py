"""Serving the Salesforce emulator for its own tests, and opening clients on it (loopback)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from emulators.salesforce import SalesforceEmulator, SalesforceEmulatorConfig, create_app
from emulators.server import RunningServer, TlsCertificate, serve_in_thread
from tests.conftest import TLS_CONTEXT


@contextlib.contextmanager
def serve_salesforce(
    config: SalesforceEmulatorConfig | None = None, *, tls: TlsCertificate | None = None
) -> Iterator[tuple[RunningServer, SalesforceEmulator]]:
    """An emulated org (the default one without `config`) on a free loopback port."""
    app = create_app(config)
    with serve_in_thread(app, tls=tls) as server:
        yield server, app.state.emulator


def authorized_client(
    server: RunningServer, emulator: SalesforceEmulator, path: str = "", *, timeout: float = 10
) -> httpx.Client:
    """A client on `server.base_url + path` holding a fresh access token of the org's user."""
    headers = {"Authorization": f"Bearer {emulator.issue_access_token()}"}
    return httpx.Client(
        base_url=server.base_url + path, headers=headers, timeout=timeout, verify=TLS_CONTEXT
    )

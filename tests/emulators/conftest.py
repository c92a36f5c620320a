"""The Salesforce emulator for its own tests: one server per test module, an empty org per test.

    def test_x(served, sf_emulator, sf_client): ...

- `served`: (server, emulator) on a free loopback port, started once per module with the org
  `sf_emulator_config` names (the default org unless the module overrides that fixture).
- `sf_emulator`: that emulator, reset to an empty org for this test.
- `sf_client(path="", authorized=True, timeout=10)`: a client on `base_url + path`, with a fresh
  access token unless `authorized=False`; closed after the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from emulators.salesforce import SalesforceEmulator, SalesforceEmulatorConfig
from emulators.server import RunningServer
from tests.conftest import TLS_CONTEXT
from tests.emulators.salesforce_setup import authorized_client, serve_salesforce


@pytest.fixture(scope="module")
def sf_emulator_config() -> SalesforceEmulatorConfig | None:
    """Override in a test module to serve another org."""
    return None


@pytest.fixture(scope="module")
def served(
    sf_emulator_config: SalesforceEmulatorConfig | None,
) -> Iterator[tuple[RunningServer, SalesforceEmulator]]:
    with serve_salesforce(sf_emulator_config) as server_and_emulator:
        yield server_and_emulator


@pytest.fixture
def sf_emulator(served: tuple[RunningServer, SalesforceEmulator]) -> SalesforceEmulator:
    emulator = served[1]
    emulator.reset()
    return emulator


@pytest.fixture
def sf_client(
    served: tuple[RunningServer, SalesforceEmulator], sf_emulator: SalesforceEmulator
) -> Iterator[Callable[..., httpx.Client]]:
    server = served[0]
    with contextlib.ExitStack() as opened:

        def open_client(
            path: str = "", *, authorized: bool = True, timeout: float = 10
        ) -> httpx.Client:
            if authorized:
                client = authorized_client(server, sf_emulator, path, timeout=timeout)
            else:
                client = httpx.Client(
                    base_url=server.base_url + path, timeout=timeout, verify=TLS_CONTEXT
                )
            return opened.enter_context(client)

        yield open_client

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from emulators.salesconnect import create_app
from emulators.server import RunningServer, serve_in_thread
from tests.conftest import TLS_CONTEXT


@pytest.fixture(scope="module")
def sc_server() -> Iterator[RunningServer]:
    app = create_app()
    with serve_in_thread(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def sc_http(sc_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sc_server.base_url, timeout=10, verify=TLS_CONTEXT) as client:
        client.post("/__emulator__/reset").raise_for_status()
        yield client

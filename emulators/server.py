"""Serve an ASGI app with uvicorn on loopback in a background thread.

Used by the emulators' tests, the integration tests and ``reminder-sync emulators``.

Synchronous code (and pytest fixtures)::

    with serve_in_thread(create_app()) as server:
        httpx.get(server.base_url + "/services/data/")

Async code: starting takes a few milliseconds, but to keep the event loop free use
``serving``; the server runs on its own thread with its own loop, so a test that blocks
its loop never stalls the server (and the server's faults never stall the test)::

    async with serving(create_app()) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            ...

HTTPS (for clients that insist on https://, such as simple-salesforce)::

    cert = self_signed_certificate(tmp_path)          # valid for 127.0.0.1 and localhost
    with serve_in_thread(app, tls=cert) as server:    # server.base_url starts with https://
        requests.get(server.base_url, verify=cert.certfile)

The socket is bound before the thread starts, so ``port`` is known (port 0 = a free port)
and the server accepts connections as soon as ``serve_in_thread`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TlsCertificate:
    """PEM files of a certificate and its key; ``certfile`` doubles as the CA bundle to trust."""

    certfile: str
    keyfile: str


def self_signed_certificate(directory: str | Path | None = None) -> TlsCertificate:
    """A fresh self-signed certificate for 127.0.0.1 and localhost, written to ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="emulator-tls-"))
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reminder-sync emulator")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = folder / "emulator-cert.pem"
    keyfile = folder / "emulator-key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keyfile.chmod(0o600)
    return TlsCertificate(str(certfile), str(keyfile))


class ServerStartError(RuntimeError):
    """The server thread did not come up (port taken, app failed at startup)."""


class RunningServer:
    """A uvicorn server running on its own thread; stop it with ``stop()`` or ``with``."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        host: str,
        port: int,
        tls: TlsCertificate | None = None,
        app: Any = None,
    ):
        self.app = app  # the ASGI app served (e.g. app.state.emulator)
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port
        self.tls = tls

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._server.should_exit

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close connections (even hanging ones) and join the thread."""
        if not self._thread.is_alive():
            return
        self._server.should_exit = True
        self._thread.join(timeout / 2)
        if self._thread.is_alive():
            # A handler stuck in a deliberate "hang" fault: skip the graceful wait.
            self._server.force_exit = True
            self._thread.join(timeout / 2)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningServer({self.base_url!r}, running={self.running})"


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only turns Nagle off (TCP_NODELAY) on sockets whose proto
    # says TCP, and with Nagle on every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_in_thread(
    app: Any,
    port: int = 0,
    *,
    host: str = LOOPBACK,
    startup_timeout: float = 10.0,
    log_level: str = "warning",
    tls: TlsCertificate | None = None,
) -> RunningServer:
    """Start ``app`` on ``host:port`` (0 = any free port) and return once it accepts requests.

    With ``tls`` the server speaks HTTPS only.
    """
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        # Keep-alive long enough for clients that reuse connections between test steps.
        timeout_keep_alive=30,
        # The apps say their own time (the Salesforce emulator's `Date` follows its shiftable
        # clock); uvicorn's would be this machine's real clock, and a second Date header.
        date_header=False,
        ssl_certfile=tls.certfile if tls else None,
        ssl_keyfile=tls.keyfile if tls else None,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below, never swallowed
            failure.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if failure or not thread.is_alive():
            raise ServerStartError(f"server on {host}:{bound_port} failed to start: {failure!r}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ServerStartError(f"server on {host}:{bound_port} did not start in time")
        time.sleep(0.005)
    return RunningServer(server, thread, host, bound_port, tls, app)


@contextlib.asynccontextmanager
async def serving(app: Any, port: int = 0, **kwargs: Any) -> AsyncIterator[RunningServer]:
    """Async twin of ``serve_in_thread``: start and stop without blocking the event loop."""
    server = await asyncio.to_thread(serve_in_thread, app, port, **kwargs)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)

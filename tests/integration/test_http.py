"""sync/connectors/http.py against small scripted HTTP servers on loopback sockets.

Each test starts a raw asyncio server on 127.0.0.1 that answers the requests it receives with a
script (one handler per request): normal answers, 429/503 sequences, redirects, a server that
drips its body, one that never answers, one that drops the connection. The client under test is
the real httpx client from `make_client`, over real sockets.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sync.connectors.http import (
    RetryPolicy,
    ServiceError,
    make_client,
    parse_retry_after,
    redact,
    send,
)

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0, request_timeout=5.0)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Received, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class ScriptedServer:
    """Answers the n-th request with script[n] (the last handler repeats)."""

    script: list[Handler]
    received: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                self.received.append(request)
                handler = self.script[min(len(self.received), len(self.script)) - 1]
                await handler(request, writer)
                if writer.is_closing():
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Received(method, path, headers, body)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[ScriptedServer]]]:
    servers: list[ScriptedServer] = []

    async def start(*script: Handler) -> ScriptedServer:
        scripted = ScriptedServer(list(script))
        scripted.server = await asyncio.start_server(scripted._serve, "127.0.0.1", 0)
        servers.append(scripted)
        return scripted

    yield start
    for scripted in servers:
        assert scripted.server is not None
        scripted.server.close()


def reply(
    status: int, body: bytes = b"{}", headers: dict[str, str] | None = None, reason: str = "X"
) -> Handler:
    async def handler(_request: Received, writer: asyncio.StreamWriter) -> None:
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
        head += ["Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return handler


def drip(total: int = 1000, every: float = 0.1) -> Handler:
    """Headers at once, then one body byte every `every` seconds: never a socket idle timeout."""

    async def handler(_request: Received, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        await writer.drain()
        for _ in range(total):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(every)

    return handler


async def hang(_request: Received, _writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def reset(_request: Received, writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP reset after reading the request."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def call(server: ScriptedServer, method: str = "GET", **kwargs) -> httpx.Response:
    kwargs.setdefault("policy", FAST)
    kwargs.setdefault("idempotent", method in ("GET", "PUT", "DELETE"))
    async with make_client(server.base_url) as client:
        return await send(client, method, "/thing?q=1", service="demo", **kwargs)


# ---------------------------------------------------------------------------------------------
# Client factory


def test_client_has_explicit_timeouts_and_never_follows_redirects() -> None:
    client = make_client("https://api.example.com", timeout=12.0)
    assert client.follow_redirects is False
    assert client.timeout.read == 12.0
    assert client.timeout.connect is not None and client.timeout.connect <= 10.0
    assert client.timeout.pool is not None


# ---------------------------------------------------------------------------------------------
# Retries


async def test_success_returns_the_read_response(serve) -> None:
    server = await serve(reply(200, b'{"ok": true}'))
    response = await call(server)
    assert response.json() == {"ok": True}
    assert len(server.received) == 1


async def test_503_then_success_is_retried_for_an_idempotent_read(serve) -> None:
    server = await serve(reply(503), reply(503), reply(200, b'{"n": 3}'))
    response = await call(server)
    assert response.json() == {"n": 3}
    assert len(server.received) == 3


async def test_persistent_5xx_gives_up_after_the_policy_attempts(serve) -> None:
    server = await serve(reply(502))
    with pytest.raises(ServiceError) as caught:
        await call(server)
    assert caught.value.category == "transient"
    assert caught.value.retryable is True
    assert caught.value.status == 502
    assert len(server.received) == FAST.attempts


async def test_500_on_a_create_is_not_retried_because_it_may_have_been_processed(serve) -> None:
    server = await serve(reply(500), reply(201))
    with pytest.raises(ServiceError) as caught:
        await call(server, "POST", json={"name": "x"})
    assert caught.value.status == 500
    assert len(server.received) == 1


async def test_429_and_503_on_a_create_are_retried_because_nothing_was_processed(serve) -> None:
    server = await serve(
        reply(429, headers={"Retry-After": "0"}), reply(503), reply(201, b'{"id": "1"}')
    )
    response = await call(server, "POST", json={"name": "x"})
    assert response.status_code == 201
    assert [r.body for r in server.received] == [b'{"name":"x"}'] * 3


async def test_retry_after_seconds_is_honoured(serve, caplog) -> None:
    server = await serve(reply(429, headers={"Retry-After": "1"}), reply(200))
    with caplog.at_level(logging.WARNING, logger="sync.connectors.http"):
        await call(server)
    assert "retrying in 1.00 s" in caplog.text
    assert len(server.received) == 2


async def test_a_long_retry_after_is_reported_not_slept_through(serve) -> None:
    server = await serve(reply(429, headers={"Retry-After": "3600"}), reply(200))
    with pytest.raises(ServiceError) as caught:
        await call(server)
    error = caught.value
    assert error.category == "rate_limit"
    assert error.retry_at is not None
    assert timedelta(minutes=55) < error.retry_at - datetime.now(UTC) < timedelta(minutes=65)
    assert len(server.received) == 1


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Mon, 02 Mar 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 02 Mar 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_is_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    samples = [policy.backoff(n) for n in range(10) for _ in range(50)]
    assert all(0 <= s <= 5.0 for s in samples)
    assert len({round(s, 6) for s in samples}) > 100  # jittered, not fixed steps


async def test_classify_turns_an_error_body_into_the_service_error(serve) -> None:
    server = await serve(reply(400, b'{"code": "BAD_NAME"}'))

    def classify(response: httpx.Response) -> ServiceError | None:
        return ServiceError(
            f"bad: {response.json()['code']}",
            service="demo",
            category="validation",
            status=response.status_code,
            code=response.json()["code"],
        )

    with pytest.raises(ServiceError) as caught:
        await call(server, classify=classify)
    assert caught.value.code == "BAD_NAME"
    assert caught.value.category == "validation"


async def test_unrecognised_errors_fall_back_to_the_status(serve) -> None:
    server = await serve(reply(404, b"<html>nope</html>"))
    with pytest.raises(ServiceError) as caught:
        await call(server, classify=lambda _r: None)
    assert caught.value.category == "not_found"
    assert caught.value.service == "demo"


# ---------------------------------------------------------------------------------------------
# Deadlines, broken connections, redirects


async def test_a_dripping_server_cannot_hold_a_request_past_the_deadline(serve) -> None:
    server = await serve(drip(total=1000, every=0.05))
    policy = RetryPolicy(attempts=3, base_delay=0.01, request_timeout=0.5)
    with pytest.raises(ServiceError) as caught:
        await call(server, policy=policy)
    assert caught.value.code == "DEADLINE_EXCEEDED"
    assert caught.value.retryable is True
    assert len(server.received) == 1  # the deadline is the caller's budget: no retry


async def test_a_hanging_server_hits_the_deadline(serve) -> None:
    server = await serve(hang)
    policy = RetryPolicy(attempts=2, request_timeout=0.3)
    with pytest.raises(ServiceError) as caught:
        await call(server, policy=policy)
    assert caught.value.code == "DEADLINE_EXCEEDED"
    assert "took longer than 0.3 s" in str(caught.value)


async def test_a_reset_connection_is_retried_for_a_read(serve) -> None:
    server = await serve(reset, reply(200, b"[]"))
    response = await call(server)
    assert response.json() == []
    assert len(server.received) == 2


async def test_a_reset_connection_is_not_replayed_for_a_create(serve) -> None:
    server = await serve(reset, reply(201))
    with pytest.raises(ServiceError) as caught:
        await call(server, "POST", json={})
    assert caught.value.code == "NETWORK_ERROR"
    assert len(server.received) == 1


async def test_connection_refused_is_retried_even_for_a_create(caplog) -> None:
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="sync.connectors.http"):
        async with make_client(f"http://127.0.0.1:{port}") as client:
            with pytest.raises(ServiceError) as caught:
                await send(client, "POST", "/x", policy=FAST, idempotent=False, json={})
    assert caught.value.code == "CONNECT_ERROR"
    assert caught.value.service == "127.0.0.1"
    assert caplog.text.count("CONNECT_ERROR") == FAST.attempts - 1


async def test_a_redirect_is_an_error_and_is_not_followed(serve) -> None:
    elsewhere = await serve(reply(200))
    server = await serve(reply(302, headers={"Location": f"{elsewhere.base_url}/steal?code=abc"}))
    with pytest.raises(ServiceError) as caught:
        await call(server, headers_factory=_bearer("tok-secret"))
    assert caught.value.code == "REDIRECT"
    assert caught.value.retryable is False
    assert "redirect" in str(caught.value)
    assert "abc" not in str(caught.value)
    assert elsewhere.received == []  # the Authorization header never left for another host


# ---------------------------------------------------------------------------------------------
# 401: one refresh, one replay


def _bearer(token: str) -> Callable[[], Awaitable[dict[str, str]]]:
    async def headers() -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    return headers


async def test_401_refreshes_once_and_replays_with_the_new_token(serve) -> None:
    server = await serve(reply(401), reply(200, b'{"ok": 1}'))
    tokens = ["old-token"]
    refreshes = 0

    async def headers() -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[-1]}"}

    async def refresh() -> None:
        nonlocal refreshes
        refreshes += 1
        tokens.append("new-token")

    response = await call(
        server, "POST", idempotent=False, headers_factory=headers, on_unauthorized=refresh
    )
    assert response.json() == {"ok": 1}
    assert refreshes == 1
    assert [r.headers["authorization"] for r in server.received] == [
        "Bearer old-token",
        "Bearer new-token",
    ]


async def test_a_second_401_is_an_auth_error_without_another_refresh(serve) -> None:
    server = await serve(reply(401))
    refreshes = 0

    async def refresh() -> None:
        nonlocal refreshes
        refreshes += 1

    with pytest.raises(ServiceError) as caught:
        await call(server, headers_factory=_bearer("t"), on_unauthorized=refresh)
    assert caught.value.category == "auth"
    assert refreshes == 1
    assert len(server.received) == 2


async def test_a_failed_refresh_propagates_its_error(serve) -> None:
    server = await serve(reply(401))

    async def refresh() -> None:
        raise ServiceError("log in again", service="demo", category="auth", code="invalid_grant")

    with pytest.raises(ServiceError, match="log in again"):
        await call(server, on_unauthorized=refresh)
    assert len(server.received) == 1


# ---------------------------------------------------------------------------------------------
# Redaction


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer 00Dx!AR8AQ.abc_def", "00Dx!AR8AQ.abc_def"),
        ("authorization: OAuth sessionid123", "sessionid123"),
        ("GET /cb?code=aPrx12%3D%3D&state=s1", "aPrx12%3D%3D"),
        ("grant_type=refresh_token&refresh_token=5Aep861&client_id=x", "5Aep861"),
        ("client_secret=s3cr3t&client_id=abc", "s3cr3t"),
        ("code_verifier=verif-123&code=c-456", "verif-123"),
        ("code_verifier=verif-123&code=c-456", "c-456"),
        ('{"access_token": "tok\\"en!", "instance_url": "x"}', 'tok\\"en!'),
        ('{"refresh_token":"rt-1"}', "rt-1"),
        ("{'client_secret': 'py-repr-secret'}", "py-repr-secret"),
        ("assertion=eyJhbGciOi.eyJpc3MiOi.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
        ("bare jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.sig-part", "sig-part"),
        ("password=hunter2", "hunter2"),
    ],
)
def test_redact_removes_secrets(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[REDACTED]" in cleaned


def test_redact_keeps_what_is_not_secret() -> None:
    text = 'errorCode=INVALID_FIELD status_code=400 {"errorCode": "NOT_FOUND", "id": "00T1"}'
    assert redact(text) == text
    assert "client_id=abc" in redact("client_id=abc&client_secret=z")


def test_service_error_message_and_repr_never_hold_a_secret() -> None:
    error = ServiceError(
        'token exchange failed: {"access_token": "live-token"} Bearer live-token',
        service="demo",
        category="auth",
    )
    for text in (str(error), repr(error), repr(error.args)):
        assert "live-token" not in text


def test_service_error_rejects_an_unknown_category() -> None:
    with pytest.raises(ValueError):
        ServiceError("x", service="demo", category="oops")

"""serve_in_thread: a real uvicorn server on a free loopback port, stopped cleanly."""

import asyncio
import socket
import ssl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulators import server as server_module
from emulators.server import RunningServer, self_signed_certificate, serve_in_thread, serving


async def hello(request):
    return JSONResponse({"path": request.url.path})


async def slow(request):
    await asyncio.sleep(60)
    return JSONResponse({})


APP = Starlette(routes=[Route("/hello", hello), Route("/slow", slow)])


def test_serves_on_a_free_loopback_port_and_stops() -> None:
    with serve_in_thread(APP) as server:
        assert isinstance(server, RunningServer)
        assert server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.app is APP
        response = httpx.get(server.base_url + "/hello")
        assert response.json() == {"path": "/hello"}
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + "/hello", timeout=2)


def test_two_servers_get_different_ports() -> None:
    with serve_in_thread(APP) as first, serve_in_thread(APP) as second:
        assert first.port != second.port
        assert httpx.get(second.base_url + "/hello").status_code == 200


def test_stop_does_not_wait_for_a_hanging_request() -> None:
    server = serve_in_thread(APP)
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        server.stop(timeout=4)
    assert not server.running


def test_a_taken_port_is_a_clear_error() -> None:
    with serve_in_thread(APP) as server, pytest.raises(OSError):
        serve_in_thread(APP, port=server.port)


async def test_async_context_manager_keeps_the_loop_free() -> None:
    async with serving(APP) as server, httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/hello")
    assert response.json() == {"path": "/hello"}
    assert not server.running


def test_tls_serves_https_with_a_certificate_clients_can_trust(tmp_path) -> None:
    cert = self_signed_certificate(tmp_path)
    with serve_in_thread(APP, tls=cert) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=cert.certfile)
        assert httpx.get(server.base_url + "/hello", verify=trusting).json() == {"path": "/hello"}
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not vouch for it
            httpx.get(server.base_url + "/hello", verify=ssl.create_default_context())


def test_the_listening_socket_names_tcp_so_asyncio_turns_nagle_off() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; without it every small
    # response waits for a delayed ACK (~40 ms a request on loopback).
    sock = server_module._bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()

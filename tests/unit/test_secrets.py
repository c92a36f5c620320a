"""Secrets: never shown, never in the state file, and only kept by a keyring that works.

The desktop keyring cannot run here, so the KeyringStore logic is tested against small
`KeyringBackend` subclasses (a dict, a liar, a hanging one, a broken one) and keyring's own
`fail`/`null` backends; tests/integration/test_keyring_secret_service.py covers a real one.
"""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringError, PasswordDeleteError

from sync.secrets import (
    KeyringStore,
    KeyringUnavailable,
    MemoryStore,
    Secret,
    SecretStore,
    SecretStoreError,
    secret_name,
)
from sync.storage import StateWriteError
from sync.store import StateStore

VALUE = "00Dxx0000001gEH!AQ4AQFakeRefreshTokenValue"


class DictBackend(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}
        self.threads: set[int] = set()

    def get_password(self, service, username):
        self.threads.add(threading.get_ident())
        return self.values.get((service, username))

    def set_password(self, service, username, password):
        self.threads.add(threading.get_ident())
        self.values[(service, username)] = password

    def delete_password(self, service, username):
        if self.values.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


class LyingBackend(DictBackend):
    """Accepts a write but stores something else (a read-only or half-locked keyring)."""

    def set_password(self, service, username, password):
        self.values[(service, username)] = password[:-1]


class HangingBackend(DictBackend):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def get_password(self, service, username):
        self.release.wait(30)
        return None


class BrokenBackend(DictBackend):
    def set_password(self, service, username, password):
        raise KeyringError(f"D-Bus said no to {password}")


# ------------------------------------------------------------------ the Secret wrapper


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret(VALUE)
    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        format(secret, ""),
        str([secret]),
    ]
    shown.append(repr({"token": secret}))
    assert all(VALUE not in text for text in shown)
    assert secret.reveal() == VALUE
    assert Secret(VALUE) == Secret(VALUE) and Secret(VALUE) != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps({"token": secret})
    with pytest.raises(TypeError):
        {secret: 1}  # noqa: B018


def test_a_secret_in_a_traceback_shows_only_stars() -> None:
    def login(token: Secret) -> None:
        raise RuntimeError(f"login failed with {token}")

    with pytest.raises(RuntimeError) as caught:
        login(Secret(VALUE))
    text = "".join(
        traceback.TracebackException.from_exception(caught.value, capture_locals=True).format()
    )
    assert VALUE not in text and "********" in text


def test_the_state_file_refuses_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateStore.open(path) as store:
        with pytest.raises(StateWriteError, match="keyring"):
            store.audit("login", after={"details": Secret(VALUE)})
        with pytest.raises(ValueError, match="keyring"):
            store.put_connection("salesforce", {"refresh_token": VALUE})
        store.put_connection("salesforce", {"instance_url": "https://example.my.salesforce.com"})
    assert VALUE not in path.read_text()
    assert "example.my.salesforce.com" in path.read_text()


# ------------------------------------------------------------------ MemoryStore


async def test_memory_store_round_trip() -> None:
    store = MemoryStore()
    assert isinstance(store, SecretStore)
    name = secret_name("salesconnect", "client_secret")
    assert await store.get(name) is None
    await store.set(name, Secret(VALUE))
    assert (await store.get(name)).reveal() == VALUE
    assert VALUE not in repr(store)
    await store.delete(name)
    await store.delete(name)  # forgetting twice is fine
    assert await store.get(name) is None


# ------------------------------------------------------------------ KeyringStore


async def test_keyring_store_round_trip_off_the_event_loop() -> None:
    backend = DictBackend()
    store = KeyringStore(backend=backend)
    assert isinstance(store, SecretStore)
    await store.set("salesforce:refresh_token", VALUE)
    assert backend.values[("reminder-sync", "salesforce:refresh_token")] == VALUE
    assert (await store.get("salesforce:refresh_token")) == Secret(VALUE)
    await store.delete("salesforce:refresh_token")
    await store.delete("salesforce:refresh_token")
    assert await store.get("salesforce:refresh_token") is None
    assert threading.get_ident() not in backend.threads  # blocking calls ran in threads


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring(), chainer.ChainerBackend()])
async def test_a_keyring_that_cannot_keep_secrets_is_refused(backend, monkeypatch) -> None:
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [fail.Keyring(), null.Keyring()])
    store = KeyringStore(backend=backend)
    for attempt in (store.set("x", VALUE), store.get("x"), store.delete("x")):
        with pytest.raises(KeyringUnavailable) as caught:
            await attempt
        message = str(caught.value)
        for advice in ("gnome-keyring", "KWallet", "PYTHON_KEYRING_BACKEND", "keyrings.alt"):
            assert advice in message
        assert VALUE not in message


@pytest.mark.parametrize(
    "choice", ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"]
)
def test_keyrings_own_choice_of_a_useless_backend_is_refused(choice: str, tmp_path: Path) -> None:
    code = (
        "import asyncio\n"
        "from sync.secrets import KeyringStore, KeyringUnavailable\n"
        "try:\n"
        f"    asyncio.run(KeyringStore().set('x', {VALUE!r}))\n"
        "    print('stored')\n"
        "except KeyringUnavailable as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = {"PYTHON_KEYRING_BACKEND": choice, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.stdout.startswith("refused: No usable keyring"), result.stderr
    assert "PYTHON_KEYRING_BACKEND" in result.stdout


async def test_a_write_that_does_not_read_back_is_an_error() -> None:
    store = KeyringStore(backend=LyingBackend())
    with pytest.raises(SecretStoreError, match="did not give the same value back") as caught:
        await store.set("salesforce:refresh_token", VALUE)
    assert VALUE not in str(caught.value) and VALUE[:-1] not in str(caught.value)


async def test_a_keyring_that_hangs_times_out_with_advice() -> None:
    backend = HangingBackend()
    store = KeyringStore(backend=backend, timeout=0.2)
    try:
        with pytest.raises(SecretStoreError, match=r"did not answer within 0\.2 s.*unlock"):
            await store.get("salesforce:refresh_token")
    finally:
        backend.release.set()


async def test_a_backend_error_never_carries_the_value() -> None:
    store = KeyringStore(backend=BrokenBackend())
    with pytest.raises(SecretStoreError) as caught:
        await store.set("salesconnect:client_secret", VALUE)
    assert "could not store salesconnect:client_secret" in str(caught.value)
    assert VALUE not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_secret_values_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for store in (KeyringStore(backend=DictBackend()), MemoryStore()):
        await store.set("salesforce:access_token", VALUE)
        await store.get("salesforce:access_token")
        await store.delete("salesforce:access_token")
    assert "salesforce:access_token" in caplog.text
    assert VALUE not in caplog.text

"""Secrets (tokens, client secrets) live only in the OS keyring, behind `SecretStore`.

- `Secret` wraps a value so that repr/str/format/pickle/JSON never show it; call `reveal()`
  at the one place the value is sent (an HTTP header or form body).
- `KeyringStore` talks to keyring's chosen backend (so `PYTHON_KEYRING_BACKEND` works as keyring
  documents). Keyring calls block (D-Bus, a password prompt), so each runs in a thread with a
  timeout. keyring's `fail` and `null` backends are refused: they would lose tokens silently.
  Every write is read back and checked.
- `MemoryStore` keeps secrets in memory, for tests and the demo.

Only secret *names* are ever logged or put in messages, never values.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, TypeVar, runtime_checkable

SERVICE = "reminder-sync"
DEFAULT_TIMEOUT = 10.0

log = logging.getLogger(__name__)
R = TypeVar("R")

HOW_TO_GET_A_KEYRING = (
    "reminder-sync keeps tokens only in the OS keyring. To get a working one: on a desktop, "
    "install and unlock GNOME Keyring (gnome-keyring) or KWallet; on a headless server, run "
    "gnome-keyring-daemon under dbus-run-session, or install keyrings.alt and set "
    "PYTHON_KEYRING_BACKEND=keyrings.alt.file.EncryptedKeyring. "
    "`python -m keyring diagnose` shows what keyring sees."
)


class Secret:
    """A secret value that does not show itself. `reveal()` returns it."""

    __slots__ = ("_value",)
    __is_secret__ = True  # recognised by the state file writer, which refuses it
    __hash__ = None  # type: ignore[assignment]  # not a dict key: keys end up in logs

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def secret_name(service: str, what: str) -> str:
    """The keyring entry name for one secret, e.g. ("salesforce", "refresh_token")."""
    return f"{service}:{what}"


def _as_text(value: Secret | str) -> str:
    return value.reveal() if isinstance(value, Secret) else value


class SecretStoreError(Exception):
    """A secret could not be read or written; the message says why and never holds a value."""


class KeyringUnavailable(SecretStoreError):
    """keyring has no usable backend on this machine."""


@runtime_checkable
class SecretStore(Protocol):
    async def get(self, name: str) -> Secret | None: ...

    async def set(self, name: str, value: Secret | str) -> None: ...

    async def delete(self, name: str) -> None: ...


class MemoryStore:
    """Secrets in a dict: for tests and the demo (nothing survives the process)."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self._values: dict[str, str] = dict(initial or {})

    async def get(self, name: str) -> Secret | None:
        value = self._values.get(name)
        return None if value is None else Secret(value)

    async def set(self, name: str, value: Secret | str) -> None:
        self._values[name] = _as_text(value)
        log.debug("stored secret %s in memory", name)

    async def delete(self, name: str) -> None:
        self._values.pop(name, None)

    def __repr__(self) -> str:
        return f"MemoryStore(names={sorted(self._values)})"


def _unusable_reason(backend: Any) -> str | None:
    """Why keyring's chosen backend cannot keep secrets, or None when it can."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, fail.Keyring):
        return "keyring found no usable backend on this machine"
    if isinstance(backend, null.Keyring):
        return "keyring is set to its 'null' backend, which forgets every secret"
    if isinstance(backend, chainer.ChainerBackend):
        usable = [b for b in backend.backends if _unusable_reason(b) is None]
        if not usable:
            return "keyring found no usable backend on this machine"
    return None


def _backend_label(backend: Any) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


class KeyringStore:
    """Secrets in the OS keyring, under the service name "reminder-sync"."""

    def __init__(
        self,
        service: str = SERVICE,
        *,
        backend: Any | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.service = service
        self.timeout = timeout
        self._backend = backend
        self._checked = False

    def __repr__(self) -> str:
        backend = _backend_label(self._backend) if self._backend is not None else "not chosen yet"
        return f"KeyringStore(service={self.service!r}, backend={backend})"

    async def backend(self) -> Any:
        """keyring's backend, checked to be usable (raises KeyringUnavailable otherwise)."""
        if self._backend is None:
            import keyring

            self._backend = await self._in_thread("open", "the keyring", keyring.get_keyring)
        if not self._checked:
            reason = _unusable_reason(self._backend)
            if reason is not None:
                label = _backend_label(self._backend)
                raise KeyringUnavailable(
                    f"No usable keyring ({reason}: {label}). " + HOW_TO_GET_A_KEYRING
                )
            self._checked = True
        return self._backend

    async def get(self, name: str) -> Secret | None:
        backend = await self.backend()
        value = await self._in_thread("read", name, backend.get_password, self.service, name)
        return None if value is None else Secret(value)

    async def set(self, name: str, value: Secret | str) -> None:
        text = _as_text(value)
        backend = await self.backend()
        await self._in_thread(
            "store", name, backend.set_password, self.service, name, text, secret=text
        )
        stored = await self._in_thread("read back", name, backend.get_password, self.service, name)
        if stored is None or not hmac.compare_digest(stored.encode(), text.encode()):
            raise SecretStoreError(
                f"The keyring ({_backend_label(backend)}) accepted {name} but did not give the "
                "same value back; it may be locked or read-only. Unlock it and log in again."
            )
        log.debug("stored secret %s in the keyring", name)

    async def delete(self, name: str) -> None:
        """Forget a secret; forgetting one that is not there is fine."""
        from keyring.errors import PasswordDeleteError

        backend = await self.backend()
        with contextlib.suppress(PasswordDeleteError):
            await self._in_thread(
                "delete",
                name,
                backend.delete_password,
                self.service,
                name,
                passthrough=PasswordDeleteError,
            )
        log.debug("deleted secret %s from the keyring", name)

    async def _in_thread(
        self,
        what: str,
        name: str,
        call: Callable[..., R],
        *args: Any,
        secret: str | None = None,
        passthrough: type[BaseException] | None = None,
    ) -> R:
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, *args), self.timeout)
        except TimeoutError:
            raise SecretStoreError(
                f"The keyring did not answer within {self.timeout:g} s when asked to {what} "
                f"{name}. It may be locked and waiting for a password: unlock it (log in to the "
                "desktop session, or run gnome-keyring-daemon --unlock) and try again."
            ) from None
        except Exception as exc:
            if passthrough is not None and isinstance(exc, passthrough):
                raise
            from keyring.errors import NoKeyringError

            if isinstance(exc, NoKeyringError):
                raise KeyringUnavailable(
                    f"No usable keyring (keyring: {type(exc).__name__}). " + HOW_TO_GET_A_KEYRING
                ) from None
            detail = f"{type(exc).__name__}: {exc}"
            if secret:
                detail = detail.replace(secret, "********")
            # `from None`: the original exception may carry the value in its args.
            raise SecretStoreError(f"The keyring could not {what} {name} ({detail}).") from None

"""A keyring backend that keeps secrets in one JSON file (0600), for tests of real processes.

The desktop keyring cannot run inside these tests' subprocesses, so they point keyring at this
backend, as keyring documents it:

    PYTHON_KEYRING_BACKEND=tests.reliability.file_keyring.FileKeyring
    REMINDER_SYNC_TEST_KEYRING=/tmp/.../keyring.json

The file stands in for the OS keyring: it is the one place secrets may be, so leak checks
exclude it. Writes are atomic (temp file + rename) so a process killed mid-write never loses
the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from jaraco.classes import properties
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

PATH_ENV = "REMINDER_SYNC_TEST_KEYRING"


class FileKeyring(KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        # Only viable when a test points at a file: keyring instantiates every viable backend it
        # knows of, and this class is known to any test process that imported it.
        if not os.environ.get(PATH_ENV):
            raise RuntimeError(f"{PATH_ENV} is not set")
        return 1

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        self.path = Path(path or os.environ[PATH_ENV])

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\0{username}", None) is None:
            raise PasswordDeleteError(username)
        self._save(data)

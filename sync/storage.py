"""Crash-safe files for the local state: atomic JSON writes, a `.bak`, and a one-writer lock.

TinyDB's stock `JSONStorage` rewrites the file in place, so a process killed mid-write leaves a
truncated file; we never use it (nor `CachingMiddleware`). `AtomicJSONStorage` is a TinyDB
storage that keeps the whole database in memory and writes only when told (`flush`):

1. serialise everything first (a value that cannot be saved fails before the disk is touched);
2. write a temp file in the same directory (mode 0600), fsync it;
3. hard-link the current good file to `<file>.bak` (atomically, through a temp name);
4. `os.replace` the temp file over the state file, then fsync the directory.

At every instant the state file name points at a complete version, old or new.

The lock is `fcntl.flock` on `<file>.lock` (Linux/macOS; the project targets POSIX). The kernel
drops a flock when its process dies, so a lock file left by a crashed process never blocks; the
pid written inside is only used for the message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

Tables = dict[str, dict[str, Any]]


class StateError(Exception):
    """A problem with the local state that the user must hear about; `str()` says what to do."""


class StateFileError(StateError):
    """The state file cannot be used as it is (empty, damaged, too new, a symlink...)."""


class StateLockedError(StateError):
    """Another reminder-sync process holds the state."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class StateWriteError(StateError):
    """Saving failed; the previous version on disk is intact."""


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Delete temp files left by a writer that died (call only while holding the lock)."""
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed.append(candidate)
    return removed


STATE_FILE_LABEL = "state file"
STATE_FILE_CONSEQUENCE = (
    "reminder-sync then forgets which tasks are paired, which may create duplicates"
)


def damaged_file_message(
    path: Path,
    problem: str,
    *,
    label: str = STATE_FILE_LABEL,
    consequence: str = STATE_FILE_CONSEQUENCE,
) -> str:
    """The user-facing text for a file we refuse to load: what, where, and what to do."""
    bak = backup_path(path)
    text = f"The {label} {path} {problem}. Nothing was changed."
    if bak.is_file() and not bak.is_symlink():
        text += (
            f" The previous good copy is {bak}: stop reminder-sync, copy it over the damaged "
            f"file (cp '{bak}' '{path}') and start again."
        )
    else:
        text += f" There is no backup copy ({bak} does not exist)."
    text += f" To start over instead, move the file away; {consequence}."
    return text


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_file(path: Path, **message: str) -> Any | None:
    """Load a JSON file we wrote; None if it does not exist. Refuses symlinks and damage.

    `message` (label, consequence) goes to `damaged_file_message`.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise StateFileError(
            damaged_file_message(
                path,
                "is a symbolic link; reminder-sync only uses a plain file it wrote itself",
                **message,
            )
        )
    if not stat.S_ISREG(info.st_mode):
        raise StateFileError(damaged_file_message(path, "is not a regular file", **message))
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) & 0o077:
            os.fchmod(handle.fileno(), 0o600)  # tighten a copy restored by hand
        raw = handle.read()
    if not raw.strip():
        raise StateFileError(damaged_file_message(path, "is empty", **message))
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StateFileError(
            damaged_file_message(path, "is damaged (not UTF-8 text)", **message)
        ) from None
    except json.JSONDecodeError as exc:
        problem = f"is damaged or cut short (invalid JSON at line {exc.lineno} column {exc.colno})"
        raise StateFileError(damaged_file_message(path, problem, **message)) from None


def _refuse_unserialisable(value: Any) -> Any:
    if getattr(value, "__is_secret__", False):
        raise StateWriteError(
            "Refusing to write a secret to the state file: secrets belong in the OS keyring."
        )
    raise StateWriteError(
        f"Cannot save a {type(value).__name__} value in the state file (a bug in reminder-sync; "
        "nothing was written, the previous version is intact)."
    )


def serialise(data: Any) -> bytes:
    """Compact ASCII JSON bytes; raises StateWriteError before any disk I/O on a bad value.

    ASCII (\\u escapes) because CPython's encoder is about twice as fast that way.
    """
    try:
        text = json.dumps(
            data,
            separators=(",", ":"),
            allow_nan=False,
            default=_refuse_unserialisable,
        )
    except ValueError as exc:  # NaN/Infinity, circular reference
        raise StateWriteError(f"Cannot save the state: {exc}. Nothing was written.") from None
    return text.encode("utf-8")


def atomic_write(path: Path, payload: bytes, *, keep_backup: bool = True) -> None:
    """Replace `path` with `payload` so that a crash leaves either the old or the new file."""
    temp = _temp_name(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        if keep_backup and os.path.lexists(path):
            _keep_backup(path)
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        reason = exc.strerror or str(exc)
        hint = " Free some disk space and try again." if exc.errno == errno.ENOSPC else ""
        raise StateWriteError(
            f"Could not save {path}: {reason}. The previous version is intact.{hint}"
        ) from None


def _keep_backup(path: Path) -> None:
    """Make `<path>.bak` the current (previous good) version without a moment of absence."""
    bak = backup_path(path)
    temp = _temp_name(bak)
    try:
        os.link(path, temp)  # no copy: the .bak shares the old inode until path is replaced
    except OSError:
        shutil.copyfile(path, temp, follow_symlinks=False)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(temp, bak)


class ProcessLock:
    """A non-blocking exclusive lock held for the life of the process (see module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "pid unknown"
            raise StateLockedError(
                f"another reminder-sync is running ({who}) and is using {self.path.parent}. "
                "Stop it first, or wait for it to finish.",
                pid,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class AtomicJSONStorage(Storage):
    """A TinyDB storage with an in-memory working copy and atomic, explicit saves.

    TinyDB calls `write` after every table change; that only marks the copy dirty. `flush`
    writes the file once, however many changes were made since the last one.
    """

    def __init__(self, path: Path, tables: Tables, *, read_only: bool = False) -> None:
        self.path = path
        self.tables: Tables = tables
        self.read_only = read_only
        self.dirty = False
        self.write_count = 0

    def read(self) -> Tables:
        return self.tables

    def write(self, data: Tables) -> None:
        self.tables = data
        self.dirty = True

    def mark_dirty(self) -> None:
        self.dirty = True

    def flush(self) -> bool:
        """Write the file if anything changed; True when a write happened."""
        if not self.dirty:
            return False
        if self.read_only:
            raise StateError(f"{self.path} was opened read-only; it cannot be saved.")
        payload = serialise(self.tables)
        atomic_write(self.path, payload)
        self.dirty = False
        self.write_count += 1
        return True

    def close(self) -> None:
        """Nothing to release: the owner decides whether to flush first."""

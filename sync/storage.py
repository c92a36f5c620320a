"""Crash-safe files for the local state: atomic JSON writes, a `.bak`, and a one-writer lock.

TinyDB's stock `JSONStorage` rewrites the file in place, so a process killed mid-write leaves a
truncated file; we never use it (nor `CachingMiddleware`). `AtomicJSONStorage` is a TinyDB
storage that keeps the whole database in memory and writes only when told (`flush`):

1. stream the JSON into a temp file in the same directory (mode 0600), fsync it; a value that
   cannot be saved fails here, the temp file is removed and the file is untouched;
2. (several files saved together: stage every temp file before committing any);
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
import itertools
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from sync import jsoncodec

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
        return jsoncodec.loads(raw.decode("utf-8"))
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
    """Compact JSON (UTF-8) bytes; raises StateWriteError before any disk I/O on a bad value."""
    try:
        return jsoncodec.dumps(data, _refuse_unserialisable)
    except (ValueError, TypeError, RecursionError) as exc:  # a cycle, an unknown type
        raise StateWriteError(f"Cannot save the state: {exc}. Nothing was written.") from None


class EncodedJSON(bytes):
    """A document kept as its compact JSON text, in UTF-8 bytes (what `encode_document`
    returns).

    `stream_tables` writes it as it is. A large table of small documents (the task cache, the
    links) takes about a third of the memory this way that it takes as nested dicts, and a save
    encodes nothing again. Bytes rather than a `str` subclass: CPython keeps a `str` subclass's
    text in a second block behind a larger header, 48 bytes more per document.

    The copy into this class is worth its cost: keeping the encoder's own bytes instead (tried)
    made each put 25-40% slower (2-3 us), as every document then held a block freshly taken
    from the system allocator rather than the encoder reusing the one it had just freed.
    """

    __slots__ = ()


def encode_document(value: Any) -> EncodedJSON:
    """`value` as an EncodedJSON document (StateWriteError on a value that cannot be saved)."""
    return EncodedJSON(serialise(value))


WRITE_CHUNK = 1 << 20  # bytes gathered before one os.write
DOCS_PER_PIECE = 500  # documents encoded by one call of the encoder


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


class _ChunkedWriter:
    """Gathers bytes and writes them to `fd` about WRITE_CHUNK bytes at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= WRITE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            _write_all(self.fd, b"".join(self.parts))
            self.parts, self.size = [], 0


def stream_tables(fd: int, tables: Tables) -> None:
    """Write `tables` as the compact JSON `serialise` would make, a few hundred documents at a
    time, so a save never holds the whole text in memory (`json.dumps` of the whole database
    peaks at twice the file's size: 124 MB for a 62 MB file).
    A value that cannot be saved raises StateWriteError (the caller drops the temp file).
    """
    out = _ChunkedWriter(fd)
    out.write(b"{")
    for t_index, (name, docs) in enumerate(tables.items()):
        out.write((b"," if t_index else b"") + serialise(name) + b":")
        if not isinstance(docs, dict):
            out.write(serialise(docs))
            continue
        out.write(b"{")
        items = iter(docs.items())
        first = True
        while piece := list(itertools.islice(items, DOCS_PER_PIECE)):
            if not first:
                out.write(b",")
            out.write(_encode_piece(piece))
            first = False
        out.write(b"}")
    out.write(b"}")
    out.flush()


def _encode_piece(items: list[tuple[str, Any]]) -> bytes:
    """`"id":{doc},...` for some documents of a table (no braces around)."""
    if not any(isinstance(doc, EncodedJSON) for _doc_id, doc in items):
        return serialise(dict(items))[1:-1]  # one call of the encoder for the whole piece
    parts: list[bytes] = []
    for doc_id, doc in items:
        if parts:
            parts.append(b",")
        # A TinyDB document id is a number as text: quoted as it is, not through the encoder
        # (a call per document, every save: 35,000 of them at 10,000 links).
        parts.append(
            b'"%s":' % doc_id.encode()
            if doc_id.isascii() and doc_id.isdigit()
            else serialise(doc_id) + b":"
        )
        parts.append(doc if isinstance(doc, EncodedJSON) else serialise(doc))
    return b"".join(parts)


def _write_failed(path: Path, exc: OSError) -> StateWriteError:
    reason = exc.strerror or str(exc)
    hint = " Free some disk space and try again." if exc.errno == errno.ENOSPC else ""
    return StateWriteError(
        f"Could not save {path}: {reason}. The previous version is intact.{hint}"
    )


def stage_file(path: Path, write: Callable[[int], None]) -> Path:
    """Step 1 of an atomic write: `write(fd)` fills a new private temp file beside `path`,
    which is then fsynced. Returns the temp file for `commit_file`; on any failure the temp
    file is gone and `path` untouched."""
    temp = _temp_name(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            write(fd)
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException as exc:
        discard_file(temp)
        if isinstance(exc, OSError):
            raise _write_failed(path, exc) from None
        raise
    return temp


def commit_file(path: Path, temp: Path, *, keep_backup: bool = True) -> None:
    """Step 2: the current `path` becomes `<path>.bak` (if `keep_backup`), then `temp`
    replaces `path`, and the directory is fsynced."""
    try:
        if keep_backup and os.path.lexists(path):
            _keep_backup(path)
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        discard_file(temp)
        raise _write_failed(path, exc) from None


def discard_file(temp: Path) -> None:
    with contextlib.suppress(OSError):
        temp.unlink()


def atomic_write(path: Path, payload: bytes, *, keep_backup: bool = True) -> None:
    """Replace `path` with `payload` so that a crash leaves either the old or the new file."""
    temp = stage_file(path, lambda fd: _write_all(fd, payload))
    commit_file(path, temp, keep_backup=keep_backup)


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

    def __init__(
        self, path: Path, tables: Tables, *, read_only: bool = False, keep_backup: bool = True
    ) -> None:
        self.path = path
        self.tables: Tables = tables
        self.read_only = read_only
        self.keep_backup = keep_backup
        self.dirty = False
        self.write_count = 0

    def read(self) -> Tables:
        return self.tables

    def write(self, data: Tables) -> None:
        self.tables = data
        self.dirty = True

    def mark_dirty(self) -> None:
        self.dirty = True

    def stage(self) -> Path:
        """Write the tables to a temp file beside the file (see `stage_file`); the file
        itself changes only at `commit`. StateWriteError on a value that cannot be saved."""
        if self.read_only:
            raise StateError(f"{self.path} was opened read-only; it cannot be saved.")
        return stage_file(self.path, lambda fd: stream_tables(fd, self.tables))

    def commit(self, temp: Path) -> None:
        """Make the staged temp file the file; the copy is clean again."""
        commit_file(self.path, temp, keep_backup=self.keep_backup)
        self.dirty = False
        self.write_count += 1

    def flush(self) -> bool:
        """Write the file if anything changed; True when a write happened."""
        if not self.dirty:
            return False
        self.commit(self.stage())
        return True

    def close(self) -> None:
        """Nothing to release: the owner decides whether to flush first."""

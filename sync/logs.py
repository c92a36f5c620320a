"""Where reminder-sync writes its log: `reminder-sync.log` in the state directory.

A file, not the terminal, because the dashboard owns the screen. The file is 0600 in the 0700
state directory, rotated at 1 MB (three old copies kept), and every record passes through
`redact` first, so a token that reached a message by mistake never reaches the disk.
`REMINDER_SYNC_DEBUG=1` raises the level to DEBUG.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from sync.connectors.http import redact
from sync.paths import ensure_private_dir

LOG_FILE_NAME = "reminder-sync.log"
DEBUG_ENV = "REMINDER_SYNC_DEBUG"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then strips anything that looks like a secret (tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class OneLineFormatter(RedactingFormatter):
    """For the terminal: the message only. Tracebacks go to the file, never to the user's screen."""

    def format(self, record: logging.LogRecord) -> str:
        plain = logging.makeLogRecord(record.__dict__)
        plain.exc_info = plain.exc_text = plain.stack_info = None
        return super().format(plain)


class _PrivateRotatingFileHandler(RotatingFileHandler):
    def _open(self):  # type: ignore[no-untyped-def]
        # Create the file 0600 before anything is written to it.
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)


def log_file(home: Path) -> Path:
    return home / LOG_FILE_NAME


def configure_logging(home: Path, *, stderr_level: int | None = logging.WARNING) -> Path:
    """Send every reminder-sync log record to the log file (and warnings to stderr, if asked).

    Returns the log file's path, for messages that point the user at it.
    """
    ensure_private_dir(home)
    path = log_file(home)
    debug = bool(os.environ.get(DEBUG_ENV))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_reminder_sync", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = _PrivateRotatingFileHandler(path, maxBytes=1_000_000, backupCount=3)
    file_handler.setFormatter(RedactingFormatter(_FORMAT))
    file_handler.setLevel(logging.DEBUG if debug else logging.INFO)
    file_handler._reminder_sync = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    if stderr_level is not None:
        console = logging.StreamHandler()
        console.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
        console.setLevel(stderr_level)
        console._reminder_sync = True  # type: ignore[attr-defined]
        root.addHandler(console)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # httpx logs every request URL at INFO; URLs never hold secrets here, but they are noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return path

"""Where reminder-sync keeps its files.

`REMINDER_SYNC_HOME` moves everything (SPEC section 5); otherwise the platform's user data
directory. The directory is private (0700): it holds which tasks are paired, their contents and
the audit log. Secrets never live here (they are in the OS keyring).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import platformdirs

APP_NAME = "reminder-sync"
HOME_ENV = "REMINDER_SYNC_HOME"
STATE_FILE_NAME = "state.json"
JOURNAL_FILE_NAME = "journal.json"


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The config and state directory (not created; see `ensure_private_dir`)."""
    env = os.environ if environ is None else environ
    override = env.get(HOME_ENV, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed and make it 0700.

    An existing directory that others can read is tightened, because the state inside it
    describes the user's tasks.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def state_file(home: Path | None = None) -> Path:
    return (home or home_dir()) / STATE_FILE_NAME


def journal_file(home: Path | None = None) -> Path:
    return (home or home_dir()) / JOURNAL_FILE_NAME

"""Named crash points, for crash tests of a real process.

`REMINDER_SYNC_FAILPOINT=after_remote_create` makes the process die (os._exit, no cleanup, no
state save: like SIGKILL) the first time it reaches that point. Unset, `failpoint` costs one
dictionary lookup. Points: before/after_remote_create, before/after_remote_update,
before/after_remote_delete, after_journal_confirm, before/after_state_save.
"""

from __future__ import annotations

import os

FAILPOINT_ENV = "REMINDER_SYNC_FAILPOINT"
CRASH_EXIT_CODE = 86


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        os._exit(CRASH_EXIT_CODE)

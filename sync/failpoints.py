"""Named crash points, for crash tests of a real process.

`REMINDER_SYNC_FAILPOINT=after_remote_create` makes the process die (os._exit, no cleanup, no
state save: like SIGKILL) the first time it reaches that point. Unset, `failpoint` costs one
dictionary lookup. The points are POINTS, in the order a run reaches them.
"""

from __future__ import annotations

import os

FAILPOINT_ENV = "REMINDER_SYNC_FAILPOINT"
CRASH_EXIT_CODE = 86
POINTS = (
    "before_remote_create",
    "after_remote_create",
    "after_journal_confirm",
    "before_remote_update",
    "after_remote_update",
    "before_remote_delete",
    "after_remote_delete",
    "before_state_save",
    "after_state_save",
)


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        os._exit(CRASH_EXIT_CODE)

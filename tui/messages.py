"""Textual messages that carry what the sync engine reports into the UI.

The bridge (`tui/bridge.py`) is the only producer. Each message wraps one engine event; the
App handles them on its own message loop, so widgets are only touched from there.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class EngineMessage(Message):
    """One engine event, delivered on the UI's loop."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class SyncStarted(EngineMessage):
    pass


class SyncProgress(EngineMessage):
    """Progress of a running sync. A busy UI only needs the latest one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SyncProgress)


class TasksChanged(EngineMessage):
    """These rows changed. Each one counts (its keys say which rows to render again); the app
    collects them and refreshes once for a burst."""


class ConflictFound(EngineMessage):
    pass


class SyncFinished(EngineMessage):
    pass


class SyncFailed(EngineMessage):
    pass


class StatusChanged(EngineMessage):
    """Settings, connections or the schedule changed: re-read the engine's status."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusChanged)

"""Engine events -> Textual messages, and nothing else.

The engine calls its listeners from wherever it runs (its own task, maybe another thread).
The bridge never touches a widget: it only posts messages, which Textual queues thread-safely
onto the target's loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message_pump import MessagePump

from sync import events
from tui import messages

_MESSAGE_FOR: dict[type, type[messages.EngineMessage]] = {
    events.SyncStarted: messages.SyncStarted,
    events.SyncProgress: messages.SyncProgress,
    events.TasksChanged: messages.TasksChanged,
    events.ConflictFound: messages.ConflictFound,
    events.SyncFinished: messages.SyncFinished,
    events.SyncFailed: messages.SyncFailed,
    events.StatusChanged: messages.StatusChanged,
}


def to_message(event: Any) -> messages.EngineMessage | None:
    """The message for an engine event, or None for an event the UI does not know."""
    for event_type, message_type in _MESSAGE_FOR.items():
        if isinstance(event, event_type):
            return message_type(event)
    return None


class EngineBridge:
    """Subscribes to an engine and posts one message per event to `target`."""

    def __init__(self, engine: Any, target: MessagePump) -> None:
        self._engine = engine
        self._target = target
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._engine.subscribe(self._on_event)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: Any) -> None:
        message = to_message(event)
        if message is not None:
            self._target.post_message(message)

"""A Static of fixed height (set in CSS) that the dashboard redraws often.

`Static.update` asks for a layout pass of the whole screen, because new content may change the
widget's size; these never change size, and most refreshes bring the same text again. `show`
skips unchanged text and repaints the rest without a layout pass.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class Line(Static):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self._text: Text | None = None

    def show_text(self, text: Text) -> None:
        old = self._text
        if old is not None and old == text and old.style == text.style:
            return
        self._text = text
        self.update(text, layout=False)

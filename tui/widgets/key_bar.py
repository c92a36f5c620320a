"""The key line at the bottom of every screen: one line of text, not a widget per key.

Textual's `Footer` recomposes a widget per key each time the screen's bindings change (focus
moves, a screen is pushed or popped): 75-240 ms on this machine, which made opening help or a
dialog during a sync miss the 100 ms target (docs/benchmarks.md, target 5). This bar renders
the same keys as one `Text` and redraws only when that text changes. A key stays clickable: it
carries an `@click` that presses it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    """Every shown binding of the screen as `key Description`, dimmed when disabled."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-bar--key", "key-bar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        link-style: none;
        link-style-hover: none;
        link-background-hover: $accent 30%;
        & > .key-bar--key {
            color: $footer-key-foreground;
            text-style: bold;
        }
        & > .key-bar--description {
            color: $footer-description-foreground;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__(id="keys", markup=False)
        self._shown: Text | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        if screen is not self.screen:
            return
        text = self.render_keys()
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)  # always one line high

    def render_keys(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key", partial=True)
        description_style = self.get_component_rich_style("key-bar--description", partial=True)
        dim = Style(dim=True)
        text = Text(no_wrap=True, overflow="ellipsis")
        seen: set[str] = set()
        palette = self.app.COMMAND_PALETTE_BINDING if self.app.ENABLE_COMMAND_PALETTE else None
        shown_palette = None
        for key, (_node, binding, enabled, _tooltip) in self.screen.active_bindings.items():
            if key == palette:
                shown_palette = (binding, enabled)
                continue
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            self._append(text, binding, enabled, key_style, description_style, dim)
        if shown_palette is not None:
            if text:
                text.append("▏", description_style)
            self._append(text, *shown_palette, key_style, description_style, dim)
        return text

    def _append(
        self,
        text: Text,
        binding: Any,
        enabled: bool,
        key_style: Style,
        description_style: Style,
        dim: Style,
    ) -> None:
        click = Style(meta={"@click": f"app.simulate_key({binding.key.split(',')[0]!r})"})
        extra = click if enabled else dim
        text.append(self.app.get_key_display(binding), key_style + extra)
        text.append(binding.description, description_style + extra)
        text.append(" ", extra)

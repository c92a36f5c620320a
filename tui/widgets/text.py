"""Remote text made safe to show: control and escape sequences dropped, never parsed as markup.

Task names and comments come from two services we do not control. A subject like `[/x]` must
not be read as Textual/Rich markup (it would crash a DataTable cell) and `\\x1b[2J` must never
reach the terminal. Everything the screens show from a service goes through `plain()`.
"""

from __future__ import annotations

import re

from rich.text import Text

# A whole ANSI/VT escape sequence: CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), or ESC + one char.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC
    r"|\x1b[@-Z\\-_]"  # two-character sequences
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
# C0 and C1 controls, DEL, and the bidi overrides that can disguise text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n\r]+")
# Anything either pattern above could touch (ESC and 8-bit CSI are controls too): most names
# hold none of it, and one search is cheaper than three substitutions.
_ANYTHING_TO_DROP = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def sanitize(value: object, *, single_line: bool = True) -> str:
    """Drop escape sequences and control characters; fold line breaks for one-line cells."""
    if value is None:
        return ""
    text = str(value)
    if _ANYTHING_TO_DROP.search(text) is None:
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    if single_line:
        text = _LINE_BREAKS.sub(" ", text)
    else:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _CONTROL.sub("", text)


def clip(text: str, width: int) -> str:
    """Cut to `width` cells, ending in "…" when something was cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def plain(value: object, *, width: int | None = None, style: str = "") -> Text:
    """A Rich Text holding the sanitised value literally (Text() never parses markup)."""
    text = sanitize(value)
    if width is not None:
        text = clip(text, width)
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def multiline(value: object, *, style: str = "") -> Text:
    """Sanitised text keeping its line breaks (for comments shown in full)."""
    return Text(sanitize(value, single_line=False), style=style)

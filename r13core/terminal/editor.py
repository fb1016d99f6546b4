"""The raw-mode line editor: keystrokes in, echo and finished lines out. Pure.

In raw mode (terminalMode 2) the client sends what the keyboard produces and
shows what comes back; the editing happens here, on the server side, so the
browser's terminal (and `r13 term` in raw mode) need no line discipline.

:meth:`LineEditor.feed` takes any chunk of keystrokes (an escape sequence may be
split across chunks) and returns an :class:`Edit`: the bytes to write to the
screen (ANSI/VT100: ``\\r``, ``ESC[K``, ``ESC[nD``) and the lines finished by
Enter. Keys:

======================  ==================================================
printable characters    insert at the cursor
Backspace (DEL, ^H)     delete before the cursor
Delete (``ESC[3~``)     delete under the cursor
Left/Right, ^B/^F       move one character
Home/End, ^A/^E         start/end of the line
^U / ^K                 delete to the start / to the end of the line
^W                      delete the word before the cursor
^C                      drop the line (echoes ``^C``, a fresh prompt)
^D                      on an empty line: end of input; else Delete
^L                      clear the screen, redraw the line
Up/Down, ^P/^N          walk the history (the line typed so far is kept)
Tab                     complete the last word (``complete`` callback)
Enter (CR, LF, CRLF)    finish the line
======================  ==================================================

Other control characters and unknown escape sequences are ignored. The line
is drawn on one screen row of ``cols`` columns: when it is longer than fits
after the prompt, the view scrolls so the cursor stays visible (every code
point counts as one column).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ESC = "\x1b"
_HOME = {"H", "1~", "7~"}
_END = {"F", "4~", "8~"}
MAX_ESCAPE = 16
"""The longest escape sequence kept while its end has not arrived."""


@dataclass
class Edit:
    """What one chunk of keystrokes produced."""

    echo: str = ""
    lines: list[str] = field(default_factory=list)
    eof: bool = False


class LineEditor:
    """One line being typed after ``prompt``, drawn within ``cols`` columns.

    ``history`` is read (up/down), never written: the owner appends finished
    lines (the interpreter keeps one history for ``history`` and for this).
    ``complete(text_before_cursor)`` returns candidates for the last word.
    """

    def __init__(
        self,
        prompt: str = "> ",
        *,
        cols: int = 80,
        history: list[str] | None = None,
        complete: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.prompt = prompt
        self.cols = cols
        self.history = history if history is not None else []
        self.complete = complete
        self.buffer: list[str] = []
        self.cursor = 0
        self._pending = ""  # an escape sequence not yet complete, or keys after a line
        self._discard = False  # inside an overlong escape sequence, dropped to its end
        self._queued = False  # _pending holds keys typed after a finished line
        self._after_cr = False  # a CR was the last key: a following LF is the same Enter
        self._hist_index: int | None = None  # None: editing the new line
        self._draft = ""  # the new line, kept while walking the history
        self._offset = 0  # first buffer index shown

    @property
    def text(self) -> str:
        """The line as typed so far."""
        return "".join(self.buffer)

    # -- drawing -----------------------------------------------------------------------

    def _room(self) -> int:
        # Columns for the line after the prompt; the last column stays free so the
        # cursor never makes the terminal wrap.
        return max(1, self.cols - len(self.prompt) - 1) if self.cols > 0 else 1 << 30

    def _view(self) -> tuple[str, int]:
        room = self._room()
        if self.cursor < self._offset:
            self._offset = self.cursor
        elif self.cursor > self._offset + room:
            self._offset = self.cursor - room
        self._offset = max(0, min(self._offset, max(0, len(self.buffer) - room)))
        if self.cursor < self._offset:  # the clamp above must keep the cursor shown
            self._offset = self.cursor
        shown = "".join(self.buffer[self._offset : self._offset + room])
        return shown, self.cursor - self._offset

    def render(self) -> str:
        """Redraw the prompt and the line from the row's start, cursor in place."""
        shown, at = self._view()
        back = len(shown) - at
        return "\r" + self.prompt + shown + ESC + "[K" + (f"{ESC}[{back}D" if back else "")

    def start(self) -> str:
        """The first prompt (for a new session, or after output)."""
        self._offset = 0
        return self.render()

    # -- input -------------------------------------------------------------------------

    def feed(self, data: str) -> Edit:
        """Apply keystrokes; the echo to write and the line Enter finished, if any.

        It stops after one finished line: the keys after it stay queued until
        the next call (``feed("")`` takes them), so the caller can write the
        line's output before the echo of what was typed after it.
        """
        out = Edit()
        data = self._pending + data
        self._pending = ""
        self._queued = False
        i = 0
        while i < len(data) and not out.eof:
            ch = data[i]
            if self._discard:  # the rest of an overlong escape sequence
                i += 1
                self._discard = not "\x40" <= ch <= "\x7e"
                continue
            if ch == ESC:
                seq, used = _escape(data, i)
                if used == 0:  # incomplete: wait for the rest
                    self._pending = data[i:]
                    break
                i += used
                self._after_cr = False
                if seq == "\x00":
                    self._discard = True
                self._key_sequence(seq, out)
                continue
            i += 1
            if ch == "\n" and self._after_cr:
                self._after_cr = False
                continue
            self._after_cr = ch == "\r"
            self._key(ch, out)
            if out.lines:  # one line at a time: its output goes before what follows
                self._pending = data[i:]
                self._queued = bool(self._pending)
                break
        return out

    @property
    def waiting(self) -> bool:
        """Whether keystrokes after a finished line wait for the next :meth:`feed`."""
        return self._queued

    def _key(self, ch: str, out: Edit) -> None:
        if ch in "\r\n":
            line = self.text
            out.echo += "\r\n"
            out.lines.append(line)
            self.buffer, self.cursor, self._offset = [], 0, 0
            self._hist_index, self._draft = None, ""
            return
        if ch in "\x7f\x08":
            if self.cursor > 0:
                del self.buffer[self.cursor - 1]
                self.cursor -= 1
        elif ch == "\x01":
            self.cursor = 0
        elif ch == "\x05":
            self.cursor = len(self.buffer)
        elif ch == "\x02":
            self.cursor = max(0, self.cursor - 1)
        elif ch == "\x06":
            self.cursor = min(len(self.buffer), self.cursor + 1)
        elif ch == "\x15":
            del self.buffer[: self.cursor]
            self.cursor = 0
        elif ch == "\x0b":
            del self.buffer[self.cursor :]
        elif ch == "\x17":
            start = self.cursor
            while start > 0 and self.buffer[start - 1] == " ":
                start -= 1
            while start > 0 and self.buffer[start - 1] != " ":
                start -= 1
            del self.buffer[start : self.cursor]
            self.cursor = start
        elif ch == "\x03":
            out.echo += self.render() + "^C\r\n"
            self.buffer, self.cursor, self._offset = [], 0, 0
            self._hist_index, self._draft = None, ""
        elif ch == "\x04":
            if not self.buffer:
                out.eof = True
                out.echo += "\r\n"
                return
            if self.cursor < len(self.buffer):
                del self.buffer[self.cursor]
        elif ch == "\x0c":
            out.echo += f"{ESC}[2J{ESC}[H"
        elif ch == "\x10":
            self._walk(-1)
        elif ch == "\x0e":
            self._walk(1)
        elif ch == "\t":
            self._complete(out)
        elif ch >= " ":
            self.buffer.insert(self.cursor, ch)
            self.cursor += 1
            if self.cursor == len(self.buffer) and self.cursor - self._offset <= self._room():
                out.echo += ch  # typing at the end: the character alone is the echo
                return
        else:
            return  # another control character: ignored, nothing to redraw
        out.echo += self.render()

    def _key_sequence(self, seq: str, out: Edit) -> None:
        if seq == "D":
            self.cursor = max(0, self.cursor - 1)
        elif seq == "C":
            self.cursor = min(len(self.buffer), self.cursor + 1)
        elif seq in _HOME:
            self.cursor = 0
        elif seq in _END:
            self.cursor = len(self.buffer)
        elif seq == "3~":
            if self.cursor < len(self.buffer):
                del self.buffer[self.cursor]
        elif seq == "A":
            self._walk(-1)
        elif seq == "B":
            self._walk(1)
        else:
            return
        out.echo += self.render()

    def _walk(self, step: int) -> None:
        if not self.history:
            return
        if self._hist_index is None:
            if step > 0:
                return
            self._draft = self.text
            index = len(self.history) - 1
        else:
            index = self._hist_index + step
            if index < 0:
                index = 0
        if index >= len(self.history):
            self._hist_index = None
            text = self._draft
        else:
            self._hist_index = index
            text = self.history[index]
        self.buffer = list(text)
        self.cursor = len(self.buffer)

    def _complete(self, out: Edit) -> None:
        if self.complete is None:
            return
        before = "".join(self.buffer[: self.cursor])
        candidates = self.complete(before)
        if not candidates:
            return
        word = "" if not before or before[-1] == " " else before.split()[-1]
        common = _common_prefix(candidates)
        if len(candidates) == 1:
            common += " "
        addition = common[len(word) :] if common.lower().startswith(word.lower()) else ""
        if addition:
            self.buffer[self.cursor - len(word) : self.cursor] = list(common)
            self.cursor += len(common) - len(word)
        elif len(candidates) > 1:
            out.echo += "\r\n" + "  ".join(candidates) + "\r\n"


def _common_prefix(words: list[str]) -> str:
    first, last = min(words), max(words)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _escape(data: str, i: int) -> tuple[str, int]:
    """The key of the escape sequence at ``data[i]``: (its final part, chars used).

    ``ESC [ params final`` (CSI) gives ``params + final`` (``"3~"``, ``"D"``);
    ``ESC O x`` (SS3) gives ``x``; a lone ESC followed by another key gives ``""``.
    Used 0: the sequence is not complete in ``data`` yet.
    """
    if i + 1 >= len(data):
        return "", 0
    kind = data[i + 1]
    if kind == "O":
        if i + 2 >= len(data):
            return "", 0
        return data[i + 2], 3
    if kind != "[":
        return "", 1  # ESC then an ordinary key: drop the ESC, keep the key
    j = i + 2
    while j < len(data) and "\x30" <= data[j] <= "\x3f":  # parameter bytes
        j += 1
    while j < len(data) and "\x20" <= data[j] <= "\x2f":  # intermediate bytes
        j += 1
    if j >= len(data):
        if j - i > MAX_ESCAPE:  # no key is this long: drop it (the rest goes too)
            return "\x00", j - i
        return "", 0
    if not "\x40" <= data[j] <= "\x7e":  # not a final byte: a broken sequence, drop it
        return "", j - i
    return data[i + 2 : j + 1], j + 1 - i

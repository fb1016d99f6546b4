"""One terminal session: the record's terminalMode, rows and cols obeyed; messages in and out.

Transport-free and pure apart from the interpreter's domain calls: `r13 term`
drives it in process (app/cli/term_cmd.py) and the WebSocket terminal relays
its messages (``GET /_dashboard/terminal``). The messages are the terminal
protocol of docs/terminal.md, as dicts (JSON on the wire):

- terminalMode 0 refuses the session (:class:`~r13core.errors.TerminalOff`);
  turning it to 0 later closes open sessions at their next input (``bye``).
- 1, line mode: the client sends whole lines (``{"type": "line"}``) and gets
  ``output`` (wrapped to ``cols``), then a ``prompt``.
- 2, raw mode: the client sends keystrokes (``{"type": "keys"}``) and gets
  ``screen`` data — the echo and editing of r13core/terminal/editor.py and the
  output, as VT100 text to write as is.

Output longer than ``rows - 1`` lines is paged: a ``-- more --`` prompt waits
(line mode: Enter for the next page, ``q`` to stop; raw mode: space for the next
page, Enter for one more line, ``q`` or ^C to stop). Rows and cols are read from
the record before every answer, so a change applies at once (a ``size`` message
says so). ``rows`` below 2 turns paging off, ``cols`` 0 turns wrapping off. A
session keeps the mode it started in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from r13core.config import Config13, TerminalMode
from r13core.errors import TerminalOff
from r13core.terminal.editor import LineEditor
from r13core.terminal.interpreter import Interpreter, Reply, complete

PROTOCOL_VERSION: Final = 1
PROMPT: Final = "r13> "
MAX_INPUT: Final = 4096
"""Characters one ``line`` or ``keys`` message may carry."""
MORE_LINE: Final = "-- more ({left} lines): Enter next page, q stops --"
MORE_RAW: Final = (
    "\x1b[7m-- more ({left} lines): space next page, Enter one line, q stops --\x1b[0m"
)
CLEAR_SCREEN: Final = "\x1b[2J\x1b[H"

Message = dict[str, Any]


def wrap(text: str, cols: int) -> list[str]:
    """``text``'s lines, each cut into pieces of at most ``cols`` characters (0: no cut).

    Cut hard, not at spaces, so tables keep their columns; tabs become spaces.
    """
    lines: list[str] = []
    for line in text.expandtabs(8).split("\n"):
        if cols <= 0 or len(line) <= cols:
            lines.append(line)
            continue
        lines += [line[i : i + cols] for i in range(0, len(line), cols)]
    return lines


class TerminalSession:
    """A session over ``interpreter``, sized and gated by the record ``read_record`` reads."""

    def __init__(self, interpreter: Interpreter, read_record: Callable[[], Config13]) -> None:
        self.interpreter = interpreter
        self.read_record = read_record
        record = read_record()
        if record.terminal_mode == TerminalMode.OFF:
            raise TerminalOff(
                "the terminal is off (terminalMode 0); turn it on with "
                "`r13 config set terminalMode line` (or raw)"
            )
        self.mode = TerminalMode(record.terminal_mode)
        interpreter.mode = int(self.mode)
        self.rows, self.cols = record.rows, record.cols
        self.closed = False
        self._pages: list[str] = []  # output lines still to show behind `-- more --`
        self.editor = LineEditor(
            PROMPT, cols=self.cols, history=interpreter.history, complete=complete
        )

    # -- opening --------------------------------------------------------------------------

    def hello(self) -> list[Message]:
        """The first messages: who and what this session is, then the first prompt."""
        hello: Message = {
            "type": "hello",
            "version": PROTOCOL_VERSION,
            "mode": self.mode.name.lower(),
            "rows": self.rows,
            "cols": self.cols,
            "prompt": PROMPT,
            "actor": self.interpreter.actor.name,
        }
        banner = "r13 terminal: type help for the commands, exit to leave"
        if self.mode == TerminalMode.RAW:
            return [hello, _screen(banner + "\r\n" + self.editor.start())]
        return [hello, {"type": "output", "text": banner, "error": False}, self._prompt()]

    # -- input ----------------------------------------------------------------------------

    def receive(self, message: object) -> list[Message]:
        """Answer one client message (a dict); a malformed one gets ``error`` and the
        session goes on. After ``bye`` the session is closed and answers nothing."""
        if self.closed:
            return []
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return [_error('a message is a JSON object with a "type"')]
        kind = message["type"]
        if kind not in ("line", "keys"):
            return [_error(f"unknown message type {kind!r} (line, keys)")]
        field = "text" if kind == "line" else "data"
        value = message.get(field)
        if not isinstance(value, str):
            return [_error(f'a "{kind}" message carries a string "{field}"')]
        if len(value) > MAX_INPUT:
            return [_error(f'"{field}" is longer than {MAX_INPUT} characters')]
        want = "line" if self.mode == TerminalMode.LINE else "keys"
        if kind != want:
            return [_error(f"this session is in {self.mode.name.lower()} mode: send {want}")]
        out = self._resize()
        if self._turned_off():
            return [*out, *self._bye("the terminal was turned off (terminalMode 0)")]
        if kind == "line":
            return out + self._line(value)
        return out + self._keys(value)

    def _resize(self) -> list[Message]:
        record = self.read_record()
        if (record.rows, record.cols) == (self.rows, self.cols):
            return []
        self.rows, self.cols = record.rows, record.cols
        self.editor.cols = self.cols
        return [{"type": "size", "rows": self.rows, "cols": self.cols}]

    def _turned_off(self) -> bool:
        return self.read_record().terminal_mode == TerminalMode.OFF

    def _bye(self, reason: str) -> list[Message]:
        self.closed = True
        return [{"type": "bye", "reason": reason}]

    def _page_size(self) -> int:
        return self.rows - 1 if self.rows >= 2 else 0

    def _take_page(self, count: int) -> list[str]:
        page, self._pages = self._pages[:count], self._pages[count:]
        return page

    # -- line mode ------------------------------------------------------------------------

    def _prompt(self) -> Message:
        if self._pages:
            return {"type": "prompt", "text": MORE_LINE.format(left=len(self._pages)), "more": True}
        return {"type": "prompt", "text": PROMPT, "more": False}

    def _line(self, text: str) -> list[Message]:
        if self._pages:  # answering `-- more --`
            if text.strip().lower() == "q":
                self._pages = []
                return [self._prompt()]
            return [self._output(self._take_page(self._page_size()), False), self._prompt()]
        reply = self.interpreter.run(text)
        out: list[Message] = []
        if reply.clear:
            out.append({"type": "clear"})
        if reply.lines:
            lines = wrap(reply.text, self.cols)
            size = self._page_size()
            if size and len(lines) > size:
                self._pages = lines[size:]
                lines = lines[:size]
            out.append(self._output(lines, reply.error))
        if reply.exit:
            return out + self._bye("exit")
        if self._turned_off():
            return out + self._bye("the terminal was turned off (terminalMode 0)")
        return [*out, *self._resize(), self._prompt()]

    @staticmethod
    def _output(lines: list[str], error: bool) -> Message:
        return {"type": "output", "text": "\n".join(lines), "error": error}

    # -- raw mode -------------------------------------------------------------------------

    def _keys(self, data: str) -> list[Message]:
        screen = ""
        while True:
            if self._pages:
                data, text = self._more_keys(data)
                screen += text
                if self._pages:
                    break  # still waiting at `-- more --` for a key
                screen += self.editor.start()
            edit = self.editor.feed(data)
            data = ""
            screen += edit.echo
            if edit.eof:  # ctrl-d on an empty line: as `exit` (unsaved edits are named)
                screen += self._show(self.interpreter.run("exit"))
                return [_screen(screen), *self._bye("end of input")]
            if not edit.lines:
                break
            reply = self.interpreter.run(edit.lines[0])
            screen += self._show(reply)
            if reply.exit:
                return [_screen(screen), *self._bye("exit")]
            if self._turned_off():
                return [_screen(screen), *self._bye("the terminal was turned off (terminalMode 0)")]
            resized = self._resize()
            if resized:
                return [_screen(screen), *resized, *self._keys("")]
            if not self._pages:
                screen += self.editor.start()
        return [_screen(screen)] if screen else []

    def _show(self, reply: Reply) -> str:
        text = CLEAR_SCREEN if reply.clear else ""
        if not reply.lines:
            return text
        lines = wrap(reply.text, self.cols)
        if reply.error:
            lines = [f"\x1b[31m{line}\x1b[0m" for line in lines]
        size = self._page_size()
        if size and len(lines) > size:
            self._pages = lines[size:]
            lines = lines[:size]
        text += "".join(line + "\r\n" for line in lines)
        if self._pages:
            text += MORE_RAW.format(left=len(self._pages))
        return text

    def _more_keys(self, data: str) -> tuple[str, str]:
        """Keys typed at `-- more --`: (the keys left over, the screen text)."""
        text = ""
        for i, key in enumerate(data):
            if key in " \r\n":
                count = self._page_size() if key == " " else 1
                text += "\r\x1b[K" + "".join(line + "\r\n" for line in self._take_page(count))
            elif key in "qQ\x03":
                self._pages = []
                text += "\r\x1b[K"
            else:
                continue
            if not self._pages:
                return data[i + 1 :].lstrip("\n") if key == "\r" else data[i + 1 :], text
            text += MORE_RAW.format(left=len(self._pages))
        return "", text


def _screen(data: str) -> Message:
    return {"type": "screen", "data": data}


def _error(text: str) -> Message:
    return {"type": "error", "text": text}

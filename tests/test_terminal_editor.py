"""The raw-mode line editor (r13core/terminal/editor.py): properties against a model.

A small model of the line (a list and a cursor) is the oracle for what each key
does; a small VT100 screen replays the echo to check what the user SEES: the
prompt and the visible part of the line on one row, the cursor where the model
says, never past the last column. Chunking must not matter: the same keys fed
in any pieces give the same echo and the same lines.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from r13core.terminal.editor import LineEditor

PROMPT = "r13> "

# Keys as terminals send them.
LEFT, RIGHT, UP, DOWN = "\x1b[D", "\x1b[C", "\x1b[A", "\x1b[B"
HOME_KEYS = ["\x1b[H", "\x1b[1~", "\x1bOH", "\x01"]
END_KEYS = ["\x1b[F", "\x1b[4~", "\x1bOF", "\x05"]
DELETE = "\x1b[3~"
BACKSPACE_KEYS = ["\x7f", "\x08"]
EDIT_KEYS = [LEFT, RIGHT, DELETE, "\x02", "\x06", "\x15", "\x0b", "\x17", *HOME_KEYS, *END_KEYS,
             *BACKSPACE_KEYS]  # fmt: skip
text_keys = st.text(alphabet="abcXYZ 019-_./é", min_size=1, max_size=3)
edit_key = st.one_of(text_keys, st.sampled_from(EDIT_KEYS))


class Model:
    """What each editing key does to the line, written the obvious way."""

    def __init__(self) -> None:
        self.line: list[str] = []
        self.cursor = 0

    def key(self, key: str) -> None:
        n = len(self.line)
        if key in (LEFT, "\x02"):
            self.cursor = max(0, self.cursor - 1)
        elif key in (RIGHT, "\x06"):
            self.cursor = min(n, self.cursor + 1)
        elif key in HOME_KEYS:
            self.cursor = 0
        elif key in END_KEYS:
            self.cursor = n
        elif key in BACKSPACE_KEYS:
            if self.cursor:
                del self.line[self.cursor - 1]
                self.cursor -= 1
        elif key == DELETE:
            if self.cursor < n:
                del self.line[self.cursor]
        elif key == "\x15":
            del self.line[: self.cursor]
            self.cursor = 0
        elif key == "\x0b":
            del self.line[self.cursor :]
        elif key == "\x17":
            start = self.cursor
            while start and self.line[start - 1] == " ":
                start -= 1
            while start and self.line[start - 1] != " ":
                start -= 1
            del self.line[start : self.cursor]
            self.cursor = start
        else:
            for ch in key:
                self.line.insert(self.cursor, ch)
                self.cursor += 1


class Screen:
    """Enough VT100 for the editor's echo: CR, LF, EL (ESC[K), CUB/CUF, ED, CUP home."""

    def __init__(self, cols: int) -> None:
        self.cols = cols
        self.rows: list[list[str]] = [[]]
        self.row = self.col = 0
        self.overflow = False

    def feed(self, data: str) -> None:
        for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z~]|.", data, re.S):
            line = self.rows[self.row]
            if token == "\r":
                self.col = 0
            elif token == "\n":
                self.row += 1
                self.rows.append([])
            elif token == "\x1b[K":
                del line[self.col :]
            elif token == "\x1b[2J":
                self.rows = [[] for _ in self.rows]
            elif token == "\x1b[H":
                self.row = self.col = 0
            elif token.startswith("\x1b[") and token[-1] in "DC":
                step = int(token[2:-1] or 1)
                self.col += -step if token[-1] == "D" else step
                assert 0 <= self.col < self.cols
            else:
                assert not token.startswith("\x1b"), token
                if self.col >= self.cols:
                    self.overflow = True
                while len(line) <= self.col:
                    line.append(" ")
                line[self.col] = token
                self.col += 1

    def current(self) -> str:
        return "".join(self.rows[self.row]).rstrip(" ")


def feed_all(editor: LineEditor, keys: list[str]) -> tuple[str, list[str]]:
    echo, lines = "", []
    for key in keys:
        edit = editor.feed(key)
        echo += edit.echo
        lines += edit.lines
        while editor.waiting:
            edit = editor.feed("")
            echo += edit.echo
            lines += edit.lines
    return echo, lines


@given(st.lists(edit_key, max_size=40), st.integers(min_value=12, max_value=60))
def test_every_edit_matches_the_model_and_the_screen_shows_it(keys: list[str], cols: int) -> None:
    editor = LineEditor(PROMPT, cols=cols)
    screen = Screen(cols)
    screen.feed(editor.start())
    model = Model()
    for key in keys:
        model.key(key)
        edit = editor.feed(key)
        assert edit.lines == [] and not edit.eof
        screen.feed(edit.echo)
        assert (editor.buffer, editor.cursor) == (model.line, model.cursor)
        # What the user sees: the prompt, then a window of the line that holds the cursor.
        shown = screen.current()
        assert shown.startswith(PROMPT.rstrip())
        window = "".join(model.line)[editor._offset : editor._offset + editor._room()]
        assert shown == (PROMPT + window).rstrip(" ")
        assert screen.col == len(PROMPT) + model.cursor - editor._offset
        assert not screen.overflow and screen.col <= cols - 1


@given(st.lists(edit_key, max_size=30), st.data())
def test_chunking_does_not_matter(keys: list[str], data: st.DataObject) -> None:
    stream = "".join(keys) + "\r" + "".join(keys[:3]) + "\r\n"
    one = LineEditor(PROMPT, cols=40)
    whole = feed_all(one, [stream])
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    other = LineEditor(PROMPT, cols=40)
    assert feed_all(other, pieces) == whole
    assert (other.buffer, other.cursor) == (one.buffer, one.cursor)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
        max_size=60,
    )
)
def test_typed_text_comes_back_as_the_line(text: str) -> None:
    editor = LineEditor(PROMPT, cols=30)
    echo, lines = feed_all(editor, [text + "\r"])
    assert lines == [text]
    assert echo.endswith("\r\n") and editor.text == ""


@given(st.lists(st.text(alphabet="abc ", min_size=1, max_size=8), min_size=1, max_size=6),
       st.integers(min_value=1, max_value=8))  # fmt: skip
def test_up_walks_back_through_history_and_down_returns_to_the_draft(
    history: list[str], ups: int
) -> None:
    editor = LineEditor(PROMPT, history=history)
    editor.feed("draft")
    for _ in range(ups):
        editor.feed(UP)
    assert editor.text == history[max(0, len(history) - ups)]
    for _ in range(ups):
        editor.feed(DOWN)
    assert editor.text == "draft"


def test_ctrl_c_drops_the_line_and_ctrl_d_ends_input_only_on_an_empty_line() -> None:
    editor = LineEditor(PROMPT)
    edit = editor.feed("half a line\x03")
    assert "^C\r\n" in edit.echo and editor.text == "" and not edit.lines
    edit = editor.feed("ab\x01\x04")  # ctrl-d with text: delete under the cursor
    assert editor.text == "b" and not edit.eof
    edit = editor.feed("\x05\x15\x04")
    assert edit.eof


def test_crlf_is_one_enter_and_keys_after_a_line_wait_for_the_next_feed() -> None:
    editor = LineEditor(PROMPT)
    edit = editor.feed("status\r\nkeys list\r")
    assert edit.lines == ["status"] and editor.waiting
    edit = editor.feed("")
    assert edit.lines == ["keys list"] and not editor.waiting


def test_tab_completes_a_single_candidate_and_lists_several() -> None:
    def complete(before: str) -> list[str]:
        word = before.split()[-1] if before and not before.endswith(" ") else ""
        return [w for w in ("enable", "exit", "status") if w.startswith(word)]

    editor = LineEditor(PROMPT, complete=complete)
    editor.feed("st\t")
    assert editor.text == "status "
    editor.feed("\x15e\t")
    edit = editor.feed("\t")
    assert editor.text == "e" and "enable  exit" in edit.echo


def test_unknown_and_overlong_escape_sequences_are_dropped() -> None:
    editor = LineEditor(PROMPT)
    editor.feed("a\x1b[99Zb\x1b[" + "1" * 40 + "D" + "c")
    assert editor.text == "abc"
    editor.feed("\x1bx")  # ESC then a key: the key stays
    assert editor.text == "abcx"

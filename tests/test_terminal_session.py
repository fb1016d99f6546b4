"""A terminal session obeys the record: terminalMode 0/1/2, rows and cols; its messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.config import Feature
from r13core.errors import TerminalOff
from r13core.services import Services, open_services
from r13core.settings import Settings
from r13core.terminal.interpreter import Interpreter
from r13core.terminal.session import MAX_INPUT, PROMPT, TerminalSession, wrap

ADMIN = Actor("key:root", "127.0.0.1")


@pytest.fixture
def services(data_dir: Path) -> Iterator[Services]:
    opened = open_services(Settings.from_env({"R13_DATA": str(data_dir)}))
    yield opened
    opened.close()


def session(services: Services, mode: int, rows: int = 24, cols: int = 80) -> TerminalSession:
    for name, value in (("terminal_mode", mode), ("rows", rows), ("cols", cols)):
        services.config_changes.set_field(Actor.cli(), name, value)
    return TerminalSession(Interpreter(services, ADMIN), services.config.read)


def line(s: TerminalSession, text: str) -> list[dict[str, Any]]:
    return s.receive({"type": "line", "text": text})


def keys(s: TerminalSession, data: str) -> str:
    """The screen text raw mode answers ``data`` with."""
    return "".join(m["data"] for m in s.receive({"type": "keys", "data": data}) if "data" in m)


def test_terminal_mode_0_refuses_the_session(services: Services) -> None:
    with pytest.raises(TerminalOff, match="terminalMode 0"):
        session(services, 0)


def test_line_mode_hello_then_output_and_prompt_per_line(services: Services) -> None:
    s = session(services, 1)
    hello, banner, prompt = s.hello()
    assert hello == {"type": "hello", "version": 1, "mode": "line", "rows": 24, "cols": 80,
                     "prompt": PROMPT, "actor": "key:root"}  # fmt: skip
    assert banner["type"] == "output" and prompt == {
        "type": "prompt",
        "text": PROMPT,
        "more": False,
    }
    out = line(s, "enable DEBUG")
    assert out[0]["type"] == "output" and "staged: enable DEBUG" in out[0]["text"]
    assert out[-1]["type"] == "prompt"
    out = line(s, "frobnicate")
    assert out[0]["error"] is True and "unknown command" in out[0]["text"]
    # Raw keystrokes are refused in line mode (and the session goes on).
    assert s.receive({"type": "keys", "data": "x"})[0]["type"] == "error"
    assert "DEBUG off -> on" in line(s, "save")[0]["text"]
    assert services.config.read().has(Feature.DEBUG)


def test_line_mode_output_is_wrapped_to_cols_and_paged_by_rows(services: Services) -> None:
    s = session(services, 1, rows=6, cols=30)
    out = line(s, "help")
    first = out[0]["text"].split("\n")
    assert len(first) == 5 and all(len(x) <= 30 for x in first)
    assert out[1]["more"] is True and "-- more" in out[1]["text"]
    # Enter shows the next page; q stops paging and gives the prompt back.
    nxt = line(s, "")
    assert len(nxt[0]["text"].split("\n")) == 5 and nxt[1]["more"] is True
    assert line(s, "q") == [{"type": "prompt", "text": PROMPT, "more": False}]
    # The whole help, page by page, equals the help wrapped to 30 columns.
    s2 = session(services, 1, rows=6, cols=30)
    pages = [line(s2, "help")]
    while pages[-1][-1]["more"]:
        pages.append(line(s2, ""))
    seen = "\n".join(p[0]["text"] for p in pages).split("\n")
    assert seen == wrap(s2.interpreter.run("help").text, 30)


def test_rows_below_two_and_cols_zero_turn_paging_and_wrapping_off(services: Services) -> None:
    s = session(services, 1, rows=0, cols=0)
    out = line(s, "help")
    assert out[-1]["more"] is False
    assert out[0]["text"] == s.interpreter.run("help").text


def test_a_change_of_rows_or_cols_applies_at_once_with_a_size_message(
    services: Services,
) -> None:
    s = session(services, 1)
    line(s, "set cols 40")
    out = line(s, "save")
    assert {"type": "size", "rows": 24, "cols": 40} in out
    assert all(len(x) <= 40 for x in line(s, "help")[0]["text"].split("\n"))


def test_turning_the_terminal_off_closes_open_sessions(services: Services) -> None:
    s = session(services, 1)
    other = session(services, 1)
    line(s, "set terminalMode off")
    out = line(s, "save")
    assert out[-1] == {"type": "bye", "reason": "the terminal was turned off (terminalMode 0)"}
    assert s.closed and line(s, "status") == []
    # Another open session ends at its next input.
    assert line(other, "status")[-1]["type"] == "bye"


def test_exit_says_bye_and_closes(services: Services) -> None:
    s = session(services, 1)
    out = line(s, "exit")
    assert out[-1] == {"type": "bye", "reason": "exit"} and s.closed


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("just text", "JSON object"),
        ({"text": "status"}, "JSON object"),
        ({"type": "resize"}, "unknown message type"),
        ({"type": "line"}, 'string "text"'),
        ({"type": "line", "text": 7}, 'string "text"'),
        ({"type": "line", "text": "x" * (MAX_INPUT + 1)}, "longer than"),
    ],
)
def test_a_malformed_message_gets_an_error_and_the_session_goes_on(
    services: Services, message: object, error: str
) -> None:
    s = session(services, 1)
    [answer] = s.receive(message)
    assert answer["type"] == "error" and error in answer["text"]
    assert line(s, "status")[-1]["type"] == "prompt"


# -- raw mode ----------------------------------------------------------------------------


def test_raw_mode_echoes_edits_and_runs_lines(services: Services) -> None:
    s = session(services, 2)
    hello, first = s.hello()
    assert hello["mode"] == "raw" and first["type"] == "screen" and PROMPT in first["data"]
    assert keys(s, "ena") == "ena"  # typed at the end: the characters themselves
    screen = keys(s, "bel\x7f\x7fle DEBUG\r")
    assert "staged: enable DEBUG" in screen and screen.endswith(PROMPT + "\x1b[K")
    assert "DEBUG off -> on" in keys(s, "save\r")
    assert services.config.read().has(Feature.DEBUG)
    # Up recalls the last command; whole lines are refused in raw mode.
    assert "save" in keys(s, "\x1b[A")
    assert s.receive({"type": "line", "text": "status"})[0]["type"] == "error"


def test_raw_mode_errors_are_red_and_output_follows_each_line_in_order(
    services: Services,
) -> None:
    s = session(services, 2)
    screen = keys(s, "bogus\rhistory\r")
    assert "\x1b[31munknown command 'bogus'" in screen
    assert screen.index("unknown command") < screen.index("   1  bogus")


def test_raw_mode_pages_long_output(services: Services) -> None:
    s = session(services, 2, rows=5, cols=80)
    screen = keys(s, "help\r")
    assert screen.count("\r\n") == 1 + 4  # the echoed Enter, then one page of rows - 1
    assert "-- more" in screen
    assert keys(s, "x") == ""  # other keys wait
    assert keys(s, "\r").count("\r\n") == 1  # Enter: one more line
    assert keys(s, " ").count("\r\n") == 4  # space: a page
    after = keys(s, "q")
    assert after.endswith(PROMPT + "\x1b[K") and "-- more" not in after


def test_raw_mode_ctrl_d_on_an_empty_line_ends_the_session(services: Services) -> None:
    s = session(services, 2)
    out = s.receive({"type": "keys", "data": "\x04"})
    assert out[-1] == {"type": "bye", "reason": "end of input"} and s.closed


def test_wrap_cuts_lines_at_cols_and_keeps_short_ones() -> None:
    assert wrap("abcdef\nxy", 4) == ["abcd", "ef", "xy"]
    assert wrap("a\tb", 0) == ["a       b"]

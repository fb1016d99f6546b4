"""`r13 term` on a data dir, driven in a pseudo-terminal with pexpect.

A real `r13` process, a real pty: line mode goes through prompt_toolkit (Tab
completion, history), raw mode through the server-side editor with the tty in
raw mode. Each session enables DEBUG, saves, and the record changes (seen by
`r13 config show` and in the file). Waits are for output, with generous
timeouts; nothing is timed.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from r13core.config import Config13, Feature
from tests.terminal_pty import ROOT, WAIT, spawn_r13

R13 = [sys.executable, "-m", "app.cli"]


def spawn(data: Path, *args: str) -> pexpect.spawn:
    return spawn_r13("term", *args, env={"R13_DATA": str(data)})


def r13(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*R13, "--data", str(data), *args], cwd=ROOT, input=stdin, capture_output=True,
        text=True, timeout=WAIT, check=False,
    )  # fmt: skip


def record(data: Path) -> Config13:
    return Config13.from_bytes((data / "config.r13").read_bytes())


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus or 0)


@pytest.mark.slow
def test_line_mode_session_completes_enables_debug_saves_and_the_record_changes(
    data_dir: Path,
) -> None:
    assert r13(data_dir, "config", "show").returncode == 0
    assert not record(data_dir).has(Feature.DEBUG)
    child = spawn(data_dir)
    child.expect("r13>")
    # Tab completes the command, then the flag name. Only the completed tail is awaited:
    # on a loaded machine the typed part is drawn first and the completion later, with
    # cursor moves between them, so "enable" never appears in one piece. The staged line
    # below proves what the completions produced.
    child.send("ena\t")
    child.expect("ble")
    child.send("DEB\t")
    child.expect("UG")
    child.send("\r")
    child.expect("staged: enable DEBUG")
    child.expect("r13>")
    assert not record(data_dir).has(Feature.DEBUG)  # staged, not applied
    child.send("save\r")
    child.expect("DEBUG off -> on")
    child.expect("r13>")
    assert record(data_dir).has(Feature.DEBUG)
    # ctrl-p twice (history up; one byte each, so no escape sequence can arrive split and
    # be read as a lone ESC on a loaded machine): the `enable DEBUG` line from history.
    child.send("\x10\x10\r")
    child.expect("staged: enable DEBUG")
    child.expect("r13>")
    child.send("bogus\r")
    child.expect("unknown command 'bogus'")
    child.expect("r13>")
    child.sendcontrol("d")  # end of input: exit
    child.expect("bye")
    assert finish(child) == 0
    shown = r13(data_dir, "config", "show").stdout
    assert "on  DEBUG" in shown


@pytest.mark.slow
def test_raw_mode_session_edits_server_side_and_the_record_changes(data_dir: Path) -> None:
    assert r13(data_dir, "config", "set", "terminalMode", "raw").returncode == 0
    child = spawn(data_dir)
    child.expect_exact("r13> ")
    # Typos fixed with backspace, the cursor moved with ctrl-a / arrows / ctrl-e.
    child.send("enabel\x7f\x7fle DEBUG")
    child.send("\x01\x1b[C\x1b[D\x05\r")
    child.expect_exact("staged: enable DEBUG")
    child.expect_exact("r13> ")
    child.send("save\r")
    child.expect_exact("DEBUG off -> on")
    child.expect_exact("r13> ")
    assert record(data_dir).has(Feature.DEBUG)
    child.send("\x1b[A\x1b[A\r")  # history: `enable DEBUG` again, now no change on save
    child.expect_exact("staged: enable DEBUG")
    child.expect_exact("r13> ")
    child.send("\x04")
    child.expect_exact("bye")
    assert finish(child) == 0
    assert "on  DEBUG" in r13(data_dir, "config", "show").stdout


def test_terminal_mode_0_refuses_r13_term(data_dir: Path) -> None:
    assert r13(data_dir, "config", "set", "terminalMode", "off").returncode == 0
    done = r13(data_dir, "term", stdin="status\n")
    assert done.returncode == 2
    assert "the terminal is off (terminalMode 0)" in done.stderr


def test_r13_term_reads_a_script_from_a_pipe(data_dir: Path) -> None:
    done = r13(data_dir, "term", stdin="enable DEBUG\nset rows 40\nsave\nstatus\n")
    assert done.returncode == 0, done.stderr
    assert "saved 2 edit(s) as one change" in done.stdout
    assert "terminal       line, 40 rows x 80 cols" in done.stdout
    assert record(data_dir).has(Feature.DEBUG) and record(data_dir).rows == 40
    assert "\x1b[" not in done.stdout  # no colour when the output is not a terminal


def test_a_script_with_a_failed_command_exits_1(data_dir: Path) -> None:
    done = r13(data_dir, "term", stdin="enable DEBUG\nsave\nkeys revoke nobody\n")
    assert done.returncode == 1
    assert "no key 'nobody'" in done.stdout
    assert record(data_dir).has(Feature.DEBUG)  # the commands before it ran


def test_key_without_url_is_refused(data_dir: Path) -> None:
    done = r13(data_dir, "term", "--key", "r13_x")
    assert done.returncode == 2 and "give --url too" in done.stderr
    done = r13(data_dir, "term", "--url", "http://127.0.0.1:9")
    assert done.returncode == 2 and "--url needs --key" in done.stderr


def test_colour_only_when_asked_for() -> None:
    from app.cli.term_cmd import Screen

    plain, coloured = io.StringIO(), io.StringIO()
    messages: list[dict[str, object]] = [
        {"type": "output", "text": "unknown command 'x'", "error": True},
        {"type": "screen", "data": "\x1b[31mbad\x1b[0m\r\n\rr13> \x1b[K"},
    ]
    Screen(plain, colour=False).show(messages)
    Screen(coloured, colour=True).show(messages)
    # Without colour: no SGR codes at all, the cursor controls of raw mode stay.
    assert plain.getvalue() == "unknown command 'x'\nbad\r\n\rr13> \x1b[K"
    assert coloured.getvalue().startswith("\x1b[31munknown command 'x'\x1b[0m\n\x1b[31mbad")

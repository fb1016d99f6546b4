"""`r13 term`: the admin terminal, on a data dir or over the network.

Without ``--url`` it runs the terminal in this process on ``--data`` (acting as
``cli``, like every `r13` command on a data dir). With ``--url URL --key KEY``
it connects to a server's WebSocket terminal (``GET /_dashboard/terminal``, an
admin key). Either way the session and its commands are r13core's
(r13core/terminal/); this module only shows the messages of the terminal
protocol (docs/terminal.md) and reads the keyboard:

- line mode (terminalMode 1): prompt_toolkit reads each line, with its editing
  keys, the session's history (up/down, ctrl-r) and completion of commands,
  subcommands, flag and field names (Tab; the same vocabulary as raw mode's,
  ``r13core.terminal.interpreter.complete``). Without a terminal on stdin it
  reads plain lines (scripts: ``printf 'enable DEBUG\\nsave\\n' | r13 term``).
- raw mode (terminalMode 2): the keyboard goes to the session key by key (the
  tty in raw mode) and the session's screen output is written as is: the
  server side echoes and edits, exactly as the browser's terminal will see it.

Errors are red and the prompt bold when stdout is a terminal (``--no-color``
turns colour off).
"""

from __future__ import annotations

import argparse
import codecs
import os
import re
import select
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from app.cli import services
from app.cli.term_transport import LocalTransport, Message, RemoteTransport, Transport
from r13core.errors import InvalidValue
from r13core.terminal.interpreter import Interpreter, complete
from r13core.terminal.session import TerminalSession

RED, BOLD, RESET = "\x1b[31m", "\x1b[1m", "\x1b[0m"
COLOUR_CODES = re.compile(r"\x1b\[[0-9;]*m")
"""SGR sequences (colours, bold, reverse): dropped from raw mode's screen without colour."""
Reader = Callable[[str], str]
"""Reads one line after a prompt (EOFError at the end of input)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "term",
        help="the admin terminal (help, status, config, keys, blocks, metrics, ...)",
        description="The admin terminal on the data dir, or with --url and --key on a "
        "running server (its WebSocket terminal). Edits of the record are staged by "
        "set/enable/disable and applied at once by save.",
    )
    p.add_argument("--url", default=None, help="a server's URL, e.g. http://localhost:4873")
    p.add_argument("--key", default=None, help="an admin key (with --url)")
    p.add_argument("--key-file", default=None, metavar="FILE", help="read the admin key from FILE")
    p.add_argument("--no-color", action="store_true", help="no colour even on a terminal")
    p.set_defaults(handler=run)


def _key(args: argparse.Namespace) -> str:
    if args.key_file is not None:
        return Path(args.key_file).read_text().strip()
    if args.key is None:
        raise InvalidValue("--url needs --key KEY or --key-file FILE (an admin key)")
    return str(args.key)


def open_transport(args: argparse.Namespace) -> Transport:
    """The session to talk to: in this process, or the server's over WebSocket."""
    if args.url is None:
        if args.key is not None or args.key_file is not None:
            raise InvalidValue("--key is for a server: give --url too")
        opened = services.of(args)
        session = TerminalSession(
            Interpreter(opened, services.ACTOR), opened.config.read
        )  # TerminalOff (terminalMode 0) ends the command here with its message
        return LocalTransport(session)
    return RemoteTransport(args.url, _key(args))


def run(args: argparse.Namespace) -> int:
    transport = open_transport(args)
    try:
        hello = transport.hello()
        colour = sys.stdout.isatty() and not args.no_color
        screen = Screen(sys.stdout, colour=colour)
        mode = hello[0].get("mode") if hello else None
        if mode == "raw":
            return RawFrontEnd(transport, screen).run(hello)
        return LineFrontEnd(transport, screen).run(hello)
    finally:
        transport.close()


class Screen:
    """Writes the session's messages to ``out``."""

    def __init__(self, out: IO[str], *, colour: bool) -> None:
        self.out = out
        self.colour = colour
        self.prompt = "r13> "
        self.more = False
        self.ended = False
        self.failed = False  # a command answered with an error

    def show(self, messages: Iterable[Message]) -> None:
        for m in messages:
            kind = m.get("type")
            if kind == "output" and m.get("error"):
                self.failed = True
            if kind == "output" and m.get("text"):
                text = str(m["text"])
                if m.get("error") and self.colour:
                    text = RED + text + RESET
                self.out.write(text + "\n")
            elif kind == "screen":
                data = str(m.get("data", ""))
                self.out.write(data if self.colour else COLOUR_CODES.sub("", data))
            elif kind == "clear":
                self.out.write("\x1b[2J\x1b[H" if self.out.isatty() else "")
            elif kind == "prompt":
                self.prompt, self.more = str(m.get("text", "")), bool(m.get("more"))
            elif kind == "error":
                self.out.write(f"r13 term: {m.get('text')}\n")
            elif kind == "bye":
                self.ended = True
                if m.get("reason") not in ("exit", "end of input"):
                    self.out.write(f"r13 term: session closed: {m.get('reason')}\n")
        self.out.flush()


class LineFrontEnd:
    """Line mode: one line at a time, read by prompt_toolkit on a terminal."""

    def __init__(self, transport: Transport, screen: Screen) -> None:
        self.transport = transport
        self.screen = screen
        self.history: list[str] = []

    def run(self, hello: list[Message]) -> int:
        self.screen.show(hello)
        interactive = sys.stdin.isatty()
        read = self._prompt_toolkit() if interactive else _plain_reader()
        while not self.screen.ended:
            try:
                text = read(self.screen.prompt)
            except KeyboardInterrupt:
                continue
            except EOFError:
                text = "q" if self.screen.more else "exit"
            self.screen.show(self.transport.send({"type": "line", "text": text}))
        # A script (lines from a pipe) fails when one of its commands failed.
        return 1 if self.screen.failed and not interactive else 0

    def _prompt_toolkit(self) -> Reader:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import Completer, Completion
        from prompt_toolkit.document import Document
        from prompt_toolkit.formatted_text import ANSI
        from prompt_toolkit.history import InMemoryHistory

        class Words(Completer):
            def get_completions(self, document: Document, event: object) -> Iterable[Completion]:
                before = document.text_before_cursor
                word = "" if not before or before[-1].isspace() else before.split()[-1]
                for candidate in complete(before):
                    yield Completion(candidate + " ", -len(word), display=candidate)

        session: PromptSession[str] = PromptSession(
            history=InMemoryHistory(), completer=Words(), complete_while_typing=False
        )
        colour = self.screen.colour

        def read(prompt: str) -> str:
            shown = ANSI(BOLD + prompt + RESET) if colour else prompt
            return session.prompt(shown)

        return read


def _plain_reader() -> Reader:
    def read(prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        if not sys.stdout.isatty():
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
        return line.rstrip("\r\n")

    return read


class RawFrontEnd:
    """Raw mode: every key to the session as typed; its screen output as is."""

    def __init__(self, transport: Transport, screen: Screen) -> None:
        self.transport = transport
        self.screen = screen

    def run(self, hello: list[Message]) -> int:
        self.screen.show(hello)
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
        if saved is not None:
            tty.setraw(fd)
        reader = None
        try:
            if self.transport.pushes:
                # A server answers when it answers: show its messages as they come.
                reader = threading.Thread(target=self._pump, daemon=True)
                reader.start()
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            while not self.screen.ended:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                chunk = os.read(fd, 1024)
                keys = decoder.decode(chunk, final=not chunk)
                if not chunk:
                    keys += "\x04"  # end of input: as ctrl-d on an empty line
                if keys:
                    self.screen.show(self.transport.send({"type": "keys", "data": keys}))
                if not chunk:
                    break
        finally:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if reader is not None:
            reader.join(timeout=5)
        return 0

    def _pump(self) -> None:
        for messages in self.transport.incoming():
            self.screen.show(messages)

"""The terminal's one command interpreter: a line in, a :class:`Reply` out.

The same interpreter serves `r13 term` on a data dir (app/cli/term_cmd.py) and
the WebSocket terminal (``GET /_dashboard/terminal``, through
r13core/terminal/session.py). It holds what a session remembers — the staged
edits of the record and the history of commands — and nothing about a screen:
sizing and paging are the session's job, echo and line editing the editor's
(r13core/terminal/editor.py).

A bad command or argument is a Reply with ``error`` set and a message that
says what was expected; it never raises (a domain error from r13core becomes
such a reply too), so a session cannot be broken by what is typed.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from r13core.audit import Actor
from r13core.config import FIELDS, Feature, TerminalMode
from r13core.errors import R13Error
from r13core.services import Services
from r13core.terminal.commands import Commands
from r13core.terminal.staging import DISPLAY_NAMES, Staged

HISTORY_SIZE = 500
"""Commands a session remembers (``history``, up/down in raw mode)."""


@dataclass(frozen=True)
class Reply:
    """What one command answers: text lines, and what the front end should do."""

    lines: list[str] = field(default_factory=list)
    error: bool = False
    clear: bool = False
    exit: bool = False

    @property
    def text(self) -> str:
        """The lines joined by newlines."""
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Spec:
    """One command: its words, how to call it, what it does."""

    usage: str
    summary: str


# Every command and subcommand, in the order `help` lists them.
SPECS: dict[str, Spec] = {
    "help": Spec("help [COMMAND]", "list the commands, or explain one"),
    "status": Spec("status", "the live record, this session, and what is staged"),
    "config show": Spec("config show", "the live record: fields, flags, hex bytes"),
    "config set": Spec("config set FIELD VALUE", "stage a field (also: set FIELD VALUE)"),
    "config enable": Spec("config enable FLAG", "stage a flag on (also: enable FLAG)"),
    "config disable": Spec("config disable FLAG", "stage a flag off (also: disable FLAG)"),
    "config export": Spec("config export [hex|base64]", "the live record as text"),
    "save": Spec("save", "apply every staged edit as one audited change"),
    "discard": Spec("discard", "drop the staged edits"),
    "keys list": Spec("keys list", "every API key (never a secret)"),
    "keys create": Spec(
        "keys create ID read|write|admin [--expires DAYS] [--rate-limit N] [--cidr BLOCK]... "
        "[--packages PATTERN]... [--owner USER]",
        "create a key; its secret is shown once",
    ),
    "keys revoke": Spec("keys revoke ID", "revoke a key at once"),
    "blocks list": Spec("blocks list", "clients blocked now"),
    "blocks unblock": Spec("blocks unblock IP", "lift a block and forget its strikes"),
    "users": Spec("users", "every user and role"),
    "metrics": Spec("metrics", "the monitor's latest sample"),
    "alerts": Spec("alerts", "active and recently cleared alerts"),
    "packages list": Spec("packages list", "every package with its latest version"),
    "packages info": Spec("packages info NAME", "a package's tags, versions, maintainers"),
    "packages search": Spec("packages search TEXT", "packages matching TEXT (npm search)"),
    "history": Spec("history", "the commands of this session"),
    "clear": Spec("clear", "clear the screen"),
    "exit": Spec("exit", "end the session (also: quit, ctrl-d)"),
}
# Top-level shortcuts: the seed's `enable DEBUG` then `save`.
ALIASES = {"set": "config set", "enable": "config enable", "disable": "config disable",
           "quit": "exit", "?": "help"}  # fmt: skip
GROUPS = ("config", "keys", "blocks", "packages")


def command_words() -> list[str]:
    """Every first word the interpreter knows."""
    return sorted({key.split()[0] for key in SPECS} | set(ALIASES))


def complete(text: str) -> list[str]:
    """Candidates for the last word of ``text`` (a line typed so far), sorted.

    Commands, subcommands, flag names after enable/disable, field names after set,
    terminal modes after ``set terminalMode``. Pure: the remote client completes
    with it too, without asking the server.
    """
    words = text.split()
    prefix = words.pop() if text and not text[-1].isspace() else ""
    head = " ".join(words)
    head = ALIASES.get(head, head)
    if not words:
        options = command_words()
    elif len(words) == 1 and words[0] in GROUPS:
        options = [key.split()[1] for key in SPECS if key.startswith(words[0] + " ")]
    elif head in ("config enable", "config disable"):
        options = [f.name or "" for f in Feature]
    elif head == "config set":
        options = [DISPLAY_NAMES[name] for name in FIELDS]
    elif (
        len(words) >= 2
        and ALIASES.get(" ".join(words[:-1]), " ".join(words[:-1])) == ("config set")
        and words[-1].replace("_", "").lower() == "terminalmode"
    ):
        options = [m.name.lower() for m in TerminalMode]
    elif words == ["help"]:
        options = sorted({key.split()[0] for key in SPECS})
    else:
        options = []
    folded = prefix.lower()
    return sorted(o for o in options if o.lower().startswith(folded))


class Interpreter:
    """One terminal session's commands over ``services``, acting as ``actor``.

    ``mode`` is the terminal mode the session runs in (shown by ``status``).
    """

    def __init__(self, services: Services, actor: Actor, *, mode: int = 1) -> None:
        self.services = services
        self.actor = actor
        self.mode = mode
        self.staged = Staged()
        self.history: list[str] = []
        self.commands = Commands(services, actor, self.staged)
        c = self.commands
        self._table: dict[str, Callable[[Sequence[str]], list[str] | Reply]] = {
            "help": self._help,
            "status": lambda a: self._bare(a, "status") or c.status(self.mode),
            "config show": lambda a: self._bare(a, "config show") or c.config_show(),
            "config set": c.stage_set,
            "config enable": lambda a: c.stage_flag(a, True),
            "config disable": lambda a: c.stage_flag(a, False),
            "config export": c.config_export,
            "save": lambda a: self._bare(a, "save") or c.save(),
            "discard": lambda a: self._bare(a, "discard") or c.discard(),
            "keys list": lambda a: self._bare(a, "keys list") or c.keys_list(),
            "keys create": c.keys_create,
            "keys revoke": c.keys_revoke,
            "blocks list": lambda a: self._bare(a, "blocks list") or c.blocks_list(),
            "blocks unblock": c.blocks_unblock,
            "users": lambda a: self._bare(a, "users") or c.users(),
            "metrics": lambda a: self._bare(a, "metrics") or c.metrics(),
            "alerts": lambda a: self._bare(a, "alerts") or c.alerts(),
            "packages list": c.packages_list,
            "packages info": c.packages_info,
            "packages search": c.packages_search,
            "history": lambda a: self._bare(a, "history") or self._history(),
            "clear": lambda a: self._bare(a, "clear") or Reply(clear=True),
            "exit": lambda a: self._bare(a, "exit") or self._exit(),
        }

    @staticmethod
    def _bare(args: Sequence[str], name: str) -> list[str]:
        if args:
            raise _Usage(f"{name} takes no arguments (usage: {SPECS[name].usage})")
        return []

    def run(self, line: str) -> Reply:
        """Run one line; never raises for anything typed."""
        text = line.strip()
        if not text:
            return Reply()
        self._remember(text)
        try:
            words = shlex.split(text)
        except ValueError as exc:
            return Reply([f"cannot read that line: {exc}"], error=True)
        try:
            name, args = self._resolve(words)
            answer = self._table[name](args)
        except _Usage as exc:
            return Reply([str(exc)], error=True)
        except R13Error as exc:
            return Reply([str(exc)], error=True)
        return answer if isinstance(answer, Reply) else Reply(answer)

    def _resolve(self, words: list[str]) -> tuple[str, list[str]]:
        first = words[0].lower()
        first = ALIASES.get(first, first)
        if " " in first:  # an alias of a subcommand: `enable DEBUG`
            return first, words[1:]
        if first in GROUPS:
            if len(words) < 2:
                subs = ", ".join(k.split()[1] for k in SPECS if k.startswith(first + " "))
                raise _Usage(f"{first} needs a subcommand: {subs}")
            name = f"{first} {words[1].lower()}"
            if name not in self._table:
                subs = ", ".join(k.split()[1] for k in SPECS if k.startswith(first + " "))
                raise _Usage(f"unknown subcommand {first} {words[1]!r} (known: {subs})")
            return name, words[2:]
        if first not in self._table:
            raise _Usage(f"unknown command {words[0]!r}; type help for the list")
        return first, words[1:]

    def _exit(self) -> Reply:
        if not self.staged:
            return Reply(["bye"], exit=True)
        count = len(self.staged.edits)
        self.staged.clear()
        return Reply([f"{count} staged edit(s) not saved: dropped", "bye"], exit=True)

    def _remember(self, text: str) -> None:
        if not self.history or self.history[-1] != text:
            self.history.append(text)
            del self.history[:-HISTORY_SIZE]

    def _history(self) -> list[str]:
        return [f"{i:>4}  {line}" for i, line in enumerate(self.history, 1)]

    def _help(self, args: Sequence[str]) -> list[str]:
        if not args:
            width = max(len(spec.usage.split(" [--")[0]) for spec in SPECS.values())
            lines = ["commands:"]
            for spec in SPECS.values():
                lines.append(f"  {spec.usage.split(' [--')[0]:<{width}}  {spec.summary}")
            lines.append("set, enable and disable stage edits; save applies them at once")
            return lines
        key = " ".join(a.lower() for a in args)
        key = ALIASES.get(key, key)
        matches = [(k, s) for k, s in SPECS.items() if k == key or k.startswith(key + " ")]
        if not matches:
            raise _Usage(f"no command {key!r}; type help for the list")
        lines = []
        for _name, spec in matches:
            lines += [f"usage: {spec.usage}", f"  {spec.summary}"]
        if key in ("config enable", "config disable"):
            lines.append("  flags: " + ", ".join(f.name or "" for f in Feature))
        if key == "config set":
            lines.append("  fields: " + ", ".join(DISPLAY_NAMES[n] for n in FIELDS))
        return lines


class _Usage(Exception):
    """A command typed wrong: the message says what was expected."""

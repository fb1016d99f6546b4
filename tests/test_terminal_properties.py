"""Properties of the terminal across its parts: staged edits against the record's own
methods, and raw-mode sessions whatever the chunking of the keystrokes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from r13core.audit import Actor
from r13core.config import Config13, Feature
from r13core.errors import InvalidValue
from r13core.services import Services, open_services
from r13core.settings import Settings
from r13core.terminal.interpreter import Interpreter
from r13core.terminal.session import TerminalSession


@contextmanager
def fresh_services() -> Iterator[Services]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir(mode=0o700)
        opened = open_services(Settings.from_env({"R13_DATA": str(data)}))
        try:
            yield opened
        finally:
            opened.close()


flag_edit = st.tuples(st.sampled_from(["enable", "disable"]), st.sampled_from(list(Feature)))
field_edit = st.tuples(
    st.just("set"),
    st.sampled_from(["rows", "cols", "terminalMode", "reserved", "registryHash"]),
    st.integers(0, 300),
)


# Each example opens a data dir (a database, the shared record): fewer, still varied.
@settings(max_examples=50)
@given(st.lists(st.one_of(flag_edit, field_edit), min_size=1, max_size=12))
def test_save_equals_the_edits_applied_one_by_one(edits: list[tuple[object, ...]]) -> None:
    with fresh_services() as services:
        term = Interpreter(services, Actor.cli())
        expected = services.config.read()
        for edit in edits:
            if edit[0] == "set":
                _, name, value = edit
                line = f"set {name} {value}"
                canonical = {"terminalMode": "terminal_mode", "registryHash": "registry_hash"}
                try:
                    canonical_name = canonical.get(str(name), str(name))
                    candidate = expected.with_field(canonical_name, int(str(value)))
                except InvalidValue:
                    candidate = None
            else:
                verb, flag = edit
                assert isinstance(flag, Feature)
                line = f"{verb} {flag.name}"
                candidate = expected.with_feature(flag, verb == "enable")
            reply = term.run(line)
            # Refused exactly when the record's own rules refuse it; then nothing is staged.
            assert reply.error == (candidate is None), (line, reply.text)
            if candidate is not None:
                expected = candidate
        before = services.config.read()
        term.run("save")
        assert services.config.read() == expected
        assert Config13.from_bytes((services.data_dir / "config.r13").read_bytes()) == expected
        changes = services.audit.page(limit=10)["events"]
        assert len(changes) == (0 if expected == before else 1)


commands = st.sampled_from(
    ["status", "help config", "history", "bogus", "set rows 30", "discard", "config export"]
)
typing = st.lists(
    st.one_of(commands.map(lambda c: c + "\r"), st.sampled_from(["x", "\x7f", "\x1b[D", "\x15"])),
    max_size=10,
)


@settings(max_examples=30)
@given(typing, st.data())
def test_a_raw_session_answers_the_same_whatever_the_chunking(
    keys: list[str], data: st.DataObject
) -> None:
    stream = "".join(keys)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    screens = []
    for chunks in ([stream], pieces):
        with fresh_services() as services:
            services.config_changes.set_field(Actor.cli(), "terminal_mode", 2)
            services.config_changes.set_field(Actor.cli(), "rows", 0)  # no paging
            session = TerminalSession(Interpreter(services, Actor.cli()), services.config.read)
            screen = ""
            for chunk in chunks:
                for message in session.receive({"type": "keys", "data": chunk}):
                    screen += message.get("data", "")
            screens.append(screen)
    assert screens[0] == screens[1]

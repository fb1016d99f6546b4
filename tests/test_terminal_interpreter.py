"""The terminal's interpreter, command by command, over real services on a data dir.

Each audited change writes exactly one audit event (with the session's actor);
a refused one writes none and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from r13core.audit import Actor
from r13core.config import Config13, Feature
from r13core.keys import Permission
from r13core.monitor.state import write_state
from r13core.names import PackageName
from r13core.services import Services, open_services
from r13core.settings import Settings
from r13core.terminal.interpreter import SPECS, Interpreter, complete
from r13core.users import Role
from tests.npm_builders import publish_body

ACTOR = Actor("key:root", "192.0.2.7")


@pytest.fixture
def services(data_dir: Path) -> Iterator[Services]:
    opened = open_services(Settings.from_env({"R13_DATA": str(data_dir)}))
    yield opened
    opened.close()


@pytest.fixture
def term(services: Services) -> Interpreter:
    return Interpreter(services, ACTOR)


def events(services: Services) -> list[dict[str, object]]:
    return list(reversed(services.audit.page(limit=1000)["events"]))


def record(services: Services) -> Config13:
    return Config13.from_bytes((services.data_dir / "config.r13").read_bytes())


# -- the record: staged edits, save, status -------------------------------------------


def test_enable_is_staged_until_save_applies_it_as_one_audited_change(
    services: Services, term: Interpreter
) -> None:
    before = services.config.read()
    generation = services.config.generation()
    assert not term.run("enable DEBUG").error
    assert not term.run("config set rows 40").error
    assert not term.run("set terminalMode raw").error
    # Nothing changed yet: not the live record, not the file, not the log.
    assert services.config.read() == before and record(services) == before
    assert events(services) == []

    reply = term.run("save")
    assert not reply.error
    assert "DEBUG off -> on" in reply.text and "rows 24 -> 40" in reply.text
    after = services.config.read()
    assert after.has(Feature.DEBUG) and (after.rows, after.terminal_mode) == (40, 2)
    assert record(services) == after
    # One update of the shared record, one audit event with the old and new bytes.
    assert services.config.generation() == generation + 1
    [event] = events(services)
    assert event["action"] == "config.change"
    assert (event["actor"], event["ip"]) == ("key:root", "192.0.2.7")
    assert event["detail"] == {"old": before.to_bytes().hex(), "new": after.to_bytes().hex()}
    assert "staged         nothing" in term.run("status").text


def test_save_keeps_a_change_another_process_made_to_other_bits(
    services: Services, term: Interpreter
) -> None:
    term.run("enable DEBUG")
    # Another admin turns PREMIUM_TYPES on between staging and saving.
    services.config_changes.set_feature(Actor.cli(), Feature.PREMIUM_TYPES, True)
    term.run("save")
    live = services.config.read()
    assert live.has(Feature.DEBUG) and live.has(Feature.PREMIUM_TYPES)


def test_status_shows_the_staged_edits_and_what_save_would_change(term: Interpreter) -> None:
    assert "staged         nothing" in term.run("status").text
    term.run("disable LOGGING")
    term.run("set cols 132")
    text = term.run("status").text
    assert "disable LOGGING; set cols 132" in text
    assert "on save: LOGGING on -> off" in text and "on save: cols 80 -> 132" in text


def test_discard_drops_the_staged_edits(services: Services, term: Interpreter) -> None:
    term.run("enable DEBUG")
    assert "discarded 1" in term.run("discard").text
    assert term.run("save").text == "nothing staged"
    assert not services.config.read().has(Feature.DEBUG) and events(services) == []


def test_save_of_edits_that_change_nothing_writes_no_event(
    services: Services, term: Interpreter
) -> None:
    term.run("enable METRICS")  # on by default
    assert "no change" in term.run("save").text
    assert events(services) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("set rows 256", "rows must be an integer in 0..255"),
        ("set rows -1", "rows must be an integer in 0..255"),
        ("set rows many", "not a number"),
        ("set terminalMode 3", "terminal_mode must be 0..2"),
        ("set terminalMode sideways", "off/line/raw"),
        ("set version 2", "version must be 1"),
        ("set colour 1", "unknown field 'colour'"),
        ("set rows", "usage: set FIELD VALUE"),
        ("enable TURBO", "unknown flag 'TURBO'"),
        ("enable", "usage: enable FLAG"),
        ("disable DEBUG LOGGING", "usage: disable FLAG"),
    ],
)
def test_a_bad_edit_is_refused_and_nothing_is_staged(
    services: Services, term: Interpreter, line: str, message: str
) -> None:
    reply = term.run(line)
    assert reply.error and message in reply.text
    assert not term.staged
    assert term.run("save").text == "nothing staged"
    assert events(services) == []


def test_config_show_and_export_print_the_live_record(
    services: Services, term: Interpreter
) -> None:
    raw = services.config.read_bytes()
    shown = term.run("config show").text
    assert "terminalMode   1 (line)" in shown and " ".join(f"{b:02x}" for b in raw) in shown
    assert term.run("config export").text == raw.hex()
    import base64

    assert term.run("config export base64").text == base64.b64encode(raw).decode()
    assert term.run("config export yaml").error
    term.run("enable DEBUG")
    assert "1 staged edit(s) not saved" in term.run("config show").text


# -- keys, blocks, users -----------------------------------------------------------------


def test_keys_create_list_revoke_each_write_one_event(
    services: Services, term: Interpreter
) -> None:
    reply = term.run("keys create ci write --expires 7 --packages @team/*")
    assert not reply.error
    secret = reply.lines[-1].removeprefix("secret (shown once): ")
    assert services.keys.authenticate(secret).permission == Permission.WRITE
    assert [e["action"] for e in events(services)] == ["key.create"]

    listed = term.run("keys list").text
    assert "ci" in listed and "write" in listed and "packages @team/*" in listed
    assert secret not in listed

    assert term.run("keys revoke ci").text == "revoked ci"
    assert services.keys.get("ci").revoked
    assert [e["action"] for e in events(services)] == ["key.create", "key.revoke"]
    assert all(e["actor"] == "key:root" for e in events(services))


@pytest.mark.parametrize(
    "line",
    [
        "keys create ci",
        "keys create ci superuser",
        "keys create ci read --expires soon",
        "keys create ci read --colour red",
        "keys revoke nobody",
        "keys revoke",
    ],
)
def test_a_refused_key_command_writes_no_event(
    services: Services, term: Interpreter, line: str
) -> None:
    assert term.run(line).error
    assert events(services) == []
    assert services.keys.list() == []


def test_blocks_list_and_unblock(services: Services, term: Interpreter) -> None:
    assert term.run("blocks list").text == "no blocks"
    services.abuse.block(Actor.cli(), "198.51.100.9", "by hand", None)
    assert "198.51.100.9" in term.run("blocks list").text
    before = len(events(services))
    assert term.run("blocks unblock 198.51.100.9").text == "unblocked 198.51.100.9"
    assert services.blocks.active() == []
    unblock = events(services)[before:]
    assert [e["action"] for e in unblock] == ["ip.unblock"]
    assert unblock[0]["actor"] == "key:root"
    # Refused: not an address. No event.
    assert term.run("blocks unblock not-an-ip").error
    assert len(events(services)) == before + 1


def test_users_lists_every_user(services: Services, term: Interpreter) -> None:
    assert term.run("users").text == "no users"
    services.identity.add_user(Actor.cli(), "alice", "a long password", Role.PUBLISHER, "")
    assert "alice" in term.run("users").text and "publisher" in term.run("users").text


# -- the monitor -------------------------------------------------------------------------


def test_metrics_and_alerts_read_the_monitor_state(services: Services, term: Interpreter) -> None:
    assert "no sample yet" in term.run("metrics").text
    assert term.run("alerts").text == "0 active alert(s)"
    alert = {
        "id": "cpu-1", "rule": "cpu", "metric": "cpu_percent", "threshold": 80.0,
        "started": 1_700_000_000.0, "ended": None, "peak": 97.5, "value": 91.25,
        "state": "active",
    }  # fmt: skip
    (services.data_dir / "run").mkdir(exist_ok=True)
    write_state(
        services.data_dir,
        {
            "format": 1,
            "history": [
                {
                    "seq": 7,
                    "ts": 1_700_000_001.0,
                    "requests_per_s": 12.5,
                    "latency_p99_ms": 3.25,
                    "cpu_percent": 91.25,
                }
            ],
            "alerts": {"log": [alert]},
        },
    )
    metrics = term.run("metrics").text
    assert "sample 7" in metrics and "requests_per_s" in metrics and "12.5" in metrics
    alerts = term.run("alerts").text
    assert "1 active alert(s)" in alerts and "cpu: cpu_percent 91.25 > 80" in alerts


# -- packages ----------------------------------------------------------------------------


def test_packages_list_info_search(services: Services, term: Interpreter) -> None:
    assert term.run("packages list").text == "no packages"
    for name, version in (("left-pad", "1.0.0"), ("left-pad", "1.1.0"), ("@team/util", "2.0.0")):
        services.registry.put_package(
            PackageName.parse(name), publish_body(name, version), actor=Actor("alice")
        )
    listed = term.run("packages list").text
    assert "left-pad" in listed and "1.1.0" in listed and "@team/util" in listed
    info = term.run("packages info left-pad").text
    assert "latest: 1.1.0" in info and "2: 1.0.0, 1.1.0" in info and "alice" in info
    found = term.run("packages search util").text
    assert "@team/util" in found and "left-pad" not in found
    assert term.run("packages info nothing-here").error
    assert term.run("packages info ../bad").error
    assert term.run("packages search").error


# -- the session's own commands, errors --------------------------------------------------


def test_history_lists_the_commands_of_the_session(term: Interpreter) -> None:
    term.run("status")
    term.run("bogus")
    term.run("status")
    assert term.run("history").lines == [
        "   1  status",
        "   2  bogus",
        "   3  status",
        "   4  history",
    ]


def test_clear_and_exit_tell_the_front_end(services: Services, term: Interpreter) -> None:
    assert term.run("clear").clear
    assert term.run("exit").exit and term.run("quit").exit
    # Leaving with unsaved edits says they are dropped; nothing is applied.
    term.run("enable DEBUG")
    reply = term.run("exit")
    assert reply.exit and "1 staged edit(s) not saved: dropped" in reply.text
    assert not services.config.read().has(Feature.DEBUG) and events(services) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frobnicate", "unknown command 'frobnicate'"),
        ("keys", "keys needs a subcommand: list, create, revoke"),
        ("keys rotate x", "unknown subcommand keys 'rotate'"),
        ("status now", "status takes no arguments"),
        ('set rows "40', "cannot read that line"),
        ("help nothing", "no command 'nothing'"),
    ],
)
def test_bad_commands_get_a_clear_error(term: Interpreter, line: str, message: str) -> None:
    reply = term.run(line)
    assert reply.error and message in reply.text


def test_help_lists_every_command_and_explains_one(term: Interpreter) -> None:
    text = term.run("help").text
    for spec in SPECS.values():
        assert spec.summary in text
    one = term.run("help enable").text
    assert "usage: config enable FLAG" in one and "DEBUG" in one


def test_completion_knows_commands_subcommands_flags_fields_and_modes() -> None:
    assert complete("") == sorted(complete(""))
    assert "enable" in complete("") and "packages" in complete("pa")
    assert complete("keys ") == ["create", "list", "revoke"]
    assert complete("enable de") == ["DEBUG"]
    assert complete("config disable PR") == ["PREMIUM_TYPES", "PRIVATE_REGISTRY", "PROXY_MODE"]
    assert complete("set term") == ["terminalMode"]
    assert complete("set terminalMode ") == ["line", "off", "raw"]
    assert complete("status ") == []

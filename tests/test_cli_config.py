"""`r13 config ...` on a data dir."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from r13core.config import Config13, fnv1a32


def run(data: Path, *args: str) -> int:
    return main(["--data", str(data), "config", *args])


def record(data: Path) -> bytes:
    return (data / "config.r13").read_bytes()


def test_show_prints_fields_flags_and_hex(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(data_dir, "show") == 0
    out = capsys.readouterr().out
    assert "terminalMode   1 (line)" in out
    assert "on  PRIVATE_REGISTRY" in out and "off DEBUG" in out
    assert " ".join(f"{b:02x}" for b in record(data_dir)) in out


def test_new_data_dir_gets_the_public_url_identity(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R13_PUBLIC_URL", "https://npm.example.com")
    assert run(data_dir, "show") == 0
    assert Config13.from_bytes(record(data_dir)).registry_hash == fnv1a32("https://npm.example.com")


def test_set_enable_disable_change_the_file(data_dir: Path) -> None:
    assert run(data_dir, "set", "terminalMode", "raw") == 0
    assert run(data_dir, "set", "rows", "0x30") == 0
    assert run(data_dir, "enable", "debug") == 0
    assert run(data_dir, "disable", "PRIVATE_REGISTRY") == 0
    cfg = Config13.from_bytes(record(data_dir))
    assert (cfg.terminal_mode, cfg.rows) == (2, 48)
    assert cfg.feature_flags & 0b100 and not cfg.feature_flags & 0b10


@pytest.mark.parametrize(
    "args",
    [
        ("set", "colour", "1"),
        ("set", "rows", "256"),
        ("set", "rows", "-1"),
        ("set", "rows", "many"),
        ("set", "terminalMode", "3"),
        ("set", "version", "2"),
        ("enable", "TURBO"),
        ("disable", "nothing"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_leaves_the_file(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    run(data_dir, "show")
    before = record(data_dir)
    capsys.readouterr()
    assert run(data_dir, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("r13: ") and err.count("\n") == 1
    assert record(data_dir) == before


def test_export_formats_round_trip_through_import(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(data_dir, "set", "cols", "132")
    capsys.readouterr()
    raw = record(data_dir)
    assert run(data_dir, "export") == 0
    assert capsys.readouterr().out.strip() == raw.hex()
    assert run(data_dir, "export", "--format", "base64") == 0
    assert base64.b64decode(capsys.readouterr().out.strip()) == raw

    other = tmp_path / "other"
    other.mkdir()
    for blob in (raw, raw.hex().encode(), base64.b64encode(raw)):
        (tmp_path / "in").write_bytes(blob)
        run(other, "set", "cols", "1")
        assert run(other, "import", str(tmp_path / "in")) == 0
        assert record(other) == raw


def test_export_bin_writes_exactly_13_bytes(data_dir: Path) -> None:
    run(data_dir, "show")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "--data",
            str(data_dir),
            "config",
            "export",
            "--format",
            "bin",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert out == record(data_dir)


def test_import_refuses_wrong_sizes_and_invalid_records(data_dir: Path, tmp_path: Path) -> None:
    run(data_dir, "show")
    before = record(data_dir)
    bad = tmp_path / "bad"
    for blob in (b"\x01" * 12, b"zz-not-hex", bytes([3] + [0] * 12).hex().encode()):
        bad.write_bytes(blob)
        assert run(data_dir, "import", str(bad)) == 2
    assert record(data_dir) == before


def test_r13_data_environment_names_the_default_dir(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R13_DATA", str(data_dir))
    from app.cli import main

    # The parser leaves --data unset; the one settings reader supplies R13_DATA.
    assert not (data_dir / "config.r13").exists()
    assert main(["config", "show"]) == 0
    assert (data_dir / "config.r13").is_file()

"""`make test` runs every benchmark in bench/ (bench/ci.py): none is left out."""

from __future__ import annotations

from pathlib import Path

from bench import ci

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_every_micro_bench_file_is_run() -> None:
    files = {f"bench/{p.name}" for p in BENCH.glob("bench_*.py")}
    assert files and set(ci.MICRO) == files
    (micro,) = [s for s in ci.STEPS if "pytest" in s.args]
    assert set(ci.MICRO) <= set(micro.args) and "--quick" in micro.args


def test_every_bench_command_is_run() -> None:
    commands = {
        f"bench.{p.stem}"
        for p in BENCH.glob("*.py")
        if 'if __name__ == "__main__":' in p.read_text() and p.stem != "ci"
    }
    covered = set().union(*(s.commands() for s in ci.STEPS))
    assert commands and commands <= covered, commands - covered


def test_every_step_writes_its_report_into_the_output_dir(tmp_path: Path) -> None:
    for step in ci.STEPS:
        argv = step.argv(tmp_path)
        assert any(str(tmp_path) in a for a in argv), step.name
        assert "{out}" not in " ".join(argv)


def test_a_failing_step_is_reported_with_its_reason(tmp_path: Path) -> None:
    broken = ci.Step("broken", ["-c", "raise SystemExit(3)"], "none.json")
    assert ci.run_step(broken, tmp_path) == ["exit status 3"]
    silent = ci.Step("silent", ["-c", "pass"], "none.json")
    assert ci.run_step(silent, tmp_path) == [f"no report at {tmp_path / 'none.json'}"]
    errors = ci.Step(
        "errors",
        ["-c", "import json, sys; open(sys.argv[1], 'w').write(json.dumps("
               "{'scenarios': {'tarball': {'errors': 2, 'requests': 9}}}))",
         "{out}/r.json"],
        "r.json",
    )  # fmt: skip
    assert ci.run_step(errors, tmp_path) == ["tarball: 2 errors"]

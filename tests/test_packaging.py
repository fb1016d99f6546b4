"""What `python -m build` makes installs and runs, and a stale C build refuses to import.

The build runs once per module from a copy of the tree as a fresh clone has it, with a
file dropped into ``app/static/`` (where the dashboard ships its files). Its wheel and its
sdist are each installed, not editable, into a fresh virtualenv, and the installed ``r13``
runs from a temporary working directory: ``--help``, ``config show`` and ``serve``
answering ``GET /-/ping`` until SIGTERM stops it. (The editable install is what every
other test runs on: ``make build`` makes it.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import bind_failed, free_port, listens_on

ROOT = Path(__file__).resolve().parent.parent
VERSION = (ROOT / "r13core" / "_version.py").read_text().split('"')[1]
# Dropped into the copy before the build: package data must carry both to the wheel.
STATIC = {"app/static/probe.txt": "top level\n", "app/static/js/deep/probe.js": "// nested\n"}

pytestmark = pytest.mark.slow


def _clean_tree(dest: Path) -> Path:
    """The tracked and untracked-but-not-ignored files, as a fresh clone has them."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


def _packages(tree: Path) -> set[str]:
    """Every package directory of r13core/ and app/ (the ones holding __init__.py)."""
    return {
        str(init.parent.relative_to(tree))
        for top in ("r13core", "app")
        for init in (tree / top).rglob("__init__.py")
    }


@dataclass
class Dists:
    tree: Path
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    root = tmp_path_factory.mktemp("build")
    tree = _clean_tree(root / "src")
    for name, text in STATIC.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    out = root / "dist"
    # The sdist first, then the wheel built from the unpacked sdist: a file the sdist
    # forgets breaks the wheel. Build isolation fetches setuptools and cffi.
    run = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return Dists(tree, wheels[0], sdists[0])


def test_the_wheel_is_one_abi3_wheel_named_for_the_version(dists: Dists) -> None:
    assert dists.wheel.name == f"r13-{VERSION}-cp311-abi3-linux_{os.uname().machine}.whl"
    with zipfile.ZipFile(dists.wheel) as whl:
        meta = whl.read(f"r13-{VERSION}.dist-info/WHEEL").decode()
        entry = whl.read(f"r13-{VERSION}.dist-info/entry_points.txt").decode()
    assert "Root-Is-Purelib: false" in meta and "Tag: cp311-abi3-" in meta
    assert "r13 = app.cli:main" in entry


def test_the_wheel_holds_every_package_the_c_core_and_the_static_files(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as whl:
        names = set(whl.namelist())
    shipped = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert shipped == _packages(dists.tree)
    assert {"app/cli", "app/resources", "r13core/storage"} <= shipped
    # Every module of every package, not just the package directories.
    sources = {str(p.relative_to(dists.tree)) for p in (dists.tree / "r13core").rglob("*.py")}
    sources |= {str(p.relative_to(dists.tree)) for p in (dists.tree / "app").rglob("*.py")}
    assert sources <= names
    assert {"r13core/py.typed", "app/py.typed", *STATIC} <= names
    # The dashboard, with the libraries the build copied from npm (never in git).
    dash = "app/static/dashboard/"
    assert {dash + "index.html", dash + "js/main.js", dash + "vendor/uPlot.esm.js"} <= names
    assert {dash + "vendor/xterm.mjs", dash + "vendor/xterm.css"} <= names
    native = [n for n in names if n.startswith("r13core/_native")]
    assert native == ["r13core/_native.abi3.so"]
    assert not [n for n in names if n.split("/")[0] in ("tests", "bench", "csrc")]


def test_the_sdist_holds_what_a_build_from_source_needs(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    c_sources = {
        str(p.relative_to(dists.tree)) for p in (dists.tree / "csrc").iterdir() if p.is_file()
    }
    assert "csrc/build_native.py" in c_sources and "csrc/r13.h" in c_sources
    needed = {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md", *c_sources, *STATIC}
    needed |= {"dashboard/package.json", "dashboard/package-lock.json", "dashboard/vendor.py"}
    assert needed <= names, needed - names
    assert {f"{pkg}/__init__.py" for pkg in _packages(dists.tree)} <= names
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]
    assert not [n for n in names if n.startswith(("tests/", "bench/", "dashboard/node_modules"))]


@dataclass
class Installed:
    """One virtualenv with r13 installed from a built artifact."""

    kind: str
    venv: Path
    work: Path  # an empty working directory outside the checkout

    @property
    def r13(self) -> Path:
        return self.venv / "bin" / "r13"

    def env(self, **extra: str) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("R13_", "REGISTRY_", "SECURITY_", "PYTHON", "VIRTUAL_ENV"))
        }
        return {**keep, "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '')}", **extra}

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.r13), *args],
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module", params=["wheel", "sdist"])
def installed(
    request: pytest.FixtureRequest, dists: Dists, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    root = tmp_path_factory.mktemp(f"install-{request.param}")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    artifact = dists.wheel if request.param == "wheel" else dists.sdist
    pip = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(artifact)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    (root / "work").mkdir()
    return Installed(request.param, env_dir, root / "work")


def test_installed_r13_runs_from_the_virtualenv_not_the_checkout(installed: Installed) -> None:
    probe = (
        "import json, importlib.resources as r, r13core, r13core._native, app.cli; "
        "print(json.dumps([r13core.__version__, r13core.__file__, r13core._native.__file__, "
        "r.files('app').joinpath('static/js/deep/probe.js').read_text()]))"
    )
    out = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", probe],
        cwd=installed.work,
        env=installed.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    version, package, native, static = json.loads(out)
    site = str(installed.venv / "lib")
    assert version == VERSION
    assert package.startswith(site) and native.startswith(site)
    assert native.endswith("_native.abi3.so")
    assert static == STATIC["app/static/js/deep/probe.js"]


def test_installed_r13_help_lists_the_commands(installed: Installed) -> None:
    run = installed.run("--help")
    assert run.returncode == 0, run.stderr
    for command in ("config", "keys", "serve", "users", "security", "--data"):
        assert command in run.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_installed_r13_config_show_makes_and_prints_the_record(
    installed: Installed, where: str
) -> None:
    data = installed.work.parent / f"data-{where}"
    args = ["--data", str(data), "config", "show"]
    run = installed.run(*(args if where == "before" else [*args[2:], *args[:2]]))
    assert run.returncode == 0, run.stderr
    record = (data / "config.r13").read_bytes()
    assert len(record) == 13
    assert "version        1" in run.stdout
    assert " ".join(f"{b:02x}" for b in record) in run.stdout
    assert not (installed.work / "var").exists()  # it used --data, not ./var


def _ping(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None


@pytest.fixture
def served(installed: Installed) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """The installed `r13 serve`, once its master listens on its port (the answer the test
    gets is then its own: tests/ports.py); another port if another process took it first."""
    log = installed.work.parent / "serve.log"
    for attempt in range(5):
        port = free_port()
        data = installed.work.parent / f"served-{attempt}"
        env = installed.env(REGISTRY_HOST="127.0.0.1", REGISTRY_PORT=str(port), R13_WORKERS="2")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(installed.r13), "serve", "--data", str(data)],
                cwd=installed.work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120  # generous: a loaded machine starts gunicorn slowly
        while proc.poll() is None and not listens_on(proc.pid, port):
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(f"r13 serve never listened: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        if proc.poll() is None or not bind_failed(log.read_text()):
            break
    try:
        yield proc, f"http://127.0.0.1:{port}", log
    finally:
        if proc.poll() is None:  # the test failed before stopping it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_installed_r13_serve_answers_ping_and_stops_on_sigterm(
    served: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, url, log = served
    deadline = time.monotonic() + 120
    answer = None
    while answer is None and proc.poll() is None and time.monotonic() < deadline:
        answer = _ping(url + "/-/ping")
        if answer is None:
            time.sleep(0.2)
    assert answer == (200, b"{}"), log.read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "created admin key" in text and "Traceback" not in text


# -- a stale build of the C core -------------------------------------------------------


def _copy_built(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(
        ROOT / "r13core", dest / "r13core", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "csrc", dest / "csrc", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _import_error(tree: Path) -> str:
    run = subprocess.run(
        [sys.executable, "-c", "import r13core._ffi"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )
    return run.stderr if run.returncode else ""


def test_a_build_older_than_the_c_sources_refuses_to_import(tmp_path: Path) -> None:
    tree = _copy_built(tmp_path)
    assert _import_error(tree) == ""
    with (tree / "csrc" / "record.c").open("a") as f:
        f.write("\n/* changed */\n")
    err = _import_error(tree)
    assert "ImportError" in err and "older than the C sources" in err and "make build" in err


def test_a_build_for_another_version_refuses_to_import(tmp_path: Path) -> None:
    tree = _copy_built(tmp_path)
    (tree / "r13core" / "_version.py").write_text('__version__ = "99.0.0"\n')
    err = _import_error(tree)
    assert "ImportError" in err and "99.0.0" in err and "rebuild" in err

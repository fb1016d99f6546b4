"""The package installs from a clean tree and refuses a stale C build."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

USE_STORE = (
    "import tempfile, r13core, r13core.config as c; "
    "d = tempfile.mkdtemp(); s = c.ConfigStore(d); s.set_feature('debug', True); "
    "print(r13core.__version__, s.read().has(c.Feature.DEBUG), r13core.__file__)"
)


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


@pytest.mark.parametrize("editable", [False, True], ids=["pip-install", "pip-install-e"])
def test_installs_into_a_fresh_virtualenv(tmp_path: Path, editable: bool) -> None:
    tree = _clean_tree(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    target = ["-e", str(tree)] if editable else [str(tree)]
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *target],
        check=True,
        capture_output=True,
        timeout=600,
    )
    out = subprocess.run(
        [str(py), "-c", USE_STORE], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.split()
    version = (ROOT / "r13core" / "_version.py").read_text().split('"')[1]
    assert out[:2] == [version, "True"]
    assert out[2].startswith(str(tree if editable else env_dir))
    assert (env_dir / "bin" / "r13").exists()


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

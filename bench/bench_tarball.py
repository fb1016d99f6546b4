"""The look inside a published tarball: r13's strict reader vs a plain tarfile stream read.

Run: .venv/bin/python -m pytest bench/bench_tarball.py --benchmark-only -q

``inspect_tarball`` (r13core/tarball.py + r13core/tarstream.py) inflates with a
ratio bound and checks every header, path and name; the baseline is what the
registry did before: ``tarfile`` in stream mode, reading package.json only.
Also: how long refusing a 256 MiB gzip bomb takes (it stops after ~16 MiB).
"""

from __future__ import annotations

import io
import random
import tarfile
import zlib

import pytest

from r13core.errors import InvalidPublish
from r13core.npm_pack import package_tarball
from r13core.tarball import inspect_tarball
from tests.npm_builders import manifest_member, tar_header

_rng = random.Random(13)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORDS = ["".join(_rng.choice(_LETTERS) for _ in range(_rng.randint(2, 9))) for _ in range(2000)]


def _text(size: int) -> bytes:
    out: list[str] = []
    total = 0
    while total < size:
        word = _rng.choice(_WORDS)
        out.append(word)
        total += len(word) + 1
    return " ".join(out).encode()


def _package(files: int, size: int) -> bytes:
    content = {f"lib/dir{i % 50}/file{i}.js": _text(size) for i in range(files)}
    return package_tarball({"name": "a", "version": "1.0.0"}, content)


SIZES = {"small-20-files": (20, 2000), "large-3000-files-20MB": (3000, 6000)}
TARBALLS = {name: _package(*shape) for name, shape in SIZES.items()}


def _tarfile_read(data: bytes) -> bytes:
    """Every member walked (as the old check did), package.json read."""
    manifest = b""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:
        for member in tar:
            if member.isfile() and member.name == "package/package.json":
                f = tar.extractfile(member)
                assert f is not None
                manifest = f.read()
    return manifest


@pytest.mark.parametrize("name", sorted(TARBALLS))
def test_inspect_tarball(benchmark: object, name: str) -> None:
    data = TARBALLS[name]
    info = benchmark(inspect_tarball, data)  # type: ignore[operator]
    assert info.manifest["name"] == "a"


@pytest.mark.parametrize("name", sorted(TARBALLS))
def test_tarfile_stream_baseline(benchmark: object, name: str) -> None:
    data = TARBALLS[name]
    assert b'"name"' in benchmark(_tarfile_read, data)  # type: ignore[operator]


def _bomb(size: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [z.compress(manifest_member()), z.compress(tar_header("package/z", size=size))]
    parts += [z.compress(bytes(1 << 20)) for _ in range(size >> 20)]
    return b"".join([*parts, z.compress(bytes(1024)), z.flush()])


BOMB = _bomb(256 << 20)


def _refuse(data: bytes) -> str:
    try:
        inspect_tarball(data)
    except InvalidPublish as exc:
        return str(exc)
    raise AssertionError("the bomb was accepted")


def test_refusing_a_256_mib_gzip_bomb(benchmark: object) -> None:
    assert "inflates more than" in benchmark(_refuse, BOMB)  # type: ignore[operator]

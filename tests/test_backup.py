"""Backup and restore in process (SQLite + files): round trip, consistency, every refusal.

The real-server scenarios (a backup under load, `npm ci` against the restored
registry, automatic backups) are in tests/e2e/test_e2e_backup.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from r13core import npm_pack
from r13core.audit import Actor
from r13core.backup import Manifest, create_backup
from r13core.backup.auto import AutoBackups, backup_name, backups_in, prune
from r13core.backup.manifest import MANIFEST, blob_path, seal
from r13core.backup.service import source_of
from r13core.backup.sqlite import DATABASE_FILE, digests, open_snapshot
from r13core.config import Feature
from r13core.keys import Permission
from r13core.names import PackageName
from r13core.registry import maintenance
from r13core.services import Services, open_services
from r13core.settings import Settings, SettingsError
from r13core.storage.blobs import FileBlobStore

URL = "http://127.0.0.1:9"
NAMES = [f"pkg{i}" for i in range(6)] + ["@team/scoped"]


def settings(data: Path) -> Settings:
    """The settings of a registry at ``data``; tests/test_backup_postgres.py sets the
    database and the blob store in the environment, as `r13` would read them."""
    backend = {k: os.environ[k] for k in ("R13_DATABASE_URL", "R13_BLOB_STORE") if k in os.environ}
    return Settings.from_env({"R13_DATA": str(data), "R13_PUBLIC_URL": URL, **backend})


def publish(services: Services, name: str, version: str, size: int = 100) -> None:
    data = npm_pack.package_tarball(
        {"name": name, "version": version}, {"index.js": os.urandom(size)}
    )
    body = npm_pack.publish_document({"name": name, "version": version}, data)
    services.registry.put_package(PackageName.parse(name), body, actor=Actor.cli())


def seed(data: Path) -> None:
    """Packages (two versions of one), keys, a user, a rotated signing key, a record change."""
    with open_services(settings(data)) as sv:
        sv.signing_keys.ensure()
        for i, name in enumerate(NAMES):
            publish(sv, name, "1.0.0", 100 * i)
        publish(sv, "pkg0", "1.1.0")
        sv.identity.create_key(Actor.cli(), "ci", Permission.WRITE, None)
        sv.signing_keys.rotate(Actor.cli())
        publish(sv, "pkg1", "2.0.0")  # signed with the new key
        sv.config_changes.set_feature(Actor.cli(), Feature.DEBUG, True)


def served(data: Path) -> dict[str, Any]:
    """What the registry at ``data`` serves: packuments, tarball bytes, keys, the record."""
    with open_services(settings(data)) as sv:
        out: dict[str, Any] = {"record": sv.config.read_bytes(), "keys": sv.registry_keys()}
        for name in NAMES:
            pkg = PackageName.parse(name)
            doc = json.loads(sv.registry.packument(pkg, abbreviated=False).body)
            out[name] = doc
            for version in doc["versions"]:
                ref = sv.registry.tarball(pkg, pkg.tarball_file(version))
                out[f"{name}@{version}"] = Path(ref.path).read_bytes()
        out["events"] = [e["action"] for e in sv.audit.page(limit=500)["events"]]
        return out


def r13(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One seeded data dir and one backup of it, shared by the module's read-only tests."""
    root = tmp_path_factory.mktemp("backup")
    data = root / "data"
    seed(data)
    assert r13("--data", str(data), "backup", str(root / "b"), "--quiet") == 0
    yield data, root / "b"


def copy_backup(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_restore_serves_exactly_what_was_backed_up(
    seeded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, backup = seeded
    assert r13("--data", str(tmp_path / "restored"), "restore", str(backup), "--quiet") == 0
    assert "every hash matches" in capsys.readouterr().out
    # Nothing of the old server's run state came along: only data.
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == [
        "blobs", "config.r13", "registry.sqlite3", "signing"]  # fmt: skip
    before, after = served(data), served(tmp_path / "restored")
    for key in before:
        if key != "events":
            assert after[key] == before[key], key
    # The audit log is the backed-up one (chain intact) plus the restore itself.
    assert after["events"][0] == "backup.restore"
    assert after["events"][1:] == [e for e in before["events"] if e != "backup.create"]
    # Two signing keys: the rotated one still served, so old signatures verify.
    assert len(after["keys"]["keys"]) == 2


def test_a_backup_lists_every_table_tarball_and_file_with_its_hash(
    seeded: tuple[Path, Path],
) -> None:
    data, backup = seeded
    m = Manifest.read(backup)
    assert m.backend == "sqlite" and m.blob_store == "files"
    with open_services(settings(data)) as sv:
        assert m.record == sv.config.read_bytes()
        live_refs = sv.storage.blob_refs()
    assert set(m.tarballs) == live_refs and len(live_refs) == len(NAMES) + 2
    for sha512, size in m.tarballs.items():
        blob = (backup / blob_path(sha512)).read_bytes()
        assert hashlib.sha512(blob).hexdigest() == sha512 and len(blob) == size
    for rel, entry in m.files.items():
        assert hashlib.sha256((backup / rel).read_bytes()).hexdigest() == entry.sha256
    assert {"config.r13", DATABASE_FILE, "signing/ring.json"} <= set(m.files)
    assert sum(1 for f in m.files if f.endswith(".pem")) == 2
    with open_snapshot(backup / DATABASE_FILE) as conn:
        assert digests(conn) == m.tables
    assert m.tables["packages"].rows == len(NAMES)


def _flip(path: Path, offset: int = 40) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset % len(raw)] ^= 0x01
    path.write_bytes(bytes(raw))


def _reseal(backup: Path, change: Callable[[dict[str, Any]], None]) -> None:
    obj = json.loads((backup / MANIFEST).read_text())
    obj.pop("seal")
    change(obj)
    obj["seal"] = seal(obj)
    (backup / MANIFEST).write_text(json.dumps(obj))


def _change_a_row(backup: Path) -> None:
    with sqlite3.connect(backup / DATABASE_FILE) as conn:
        conn.execute("UPDATE packages SET doc = replace(doc, 'pkg3', 'pkg3') || ' ' "
                     "WHERE name = 'pkg3'")  # fmt: skip
    conn.close()


def _row_changed_and_manifest_rehashed(backup: Path) -> None:
    """A forger's edit: a row changed, the file's hash and the seal recomputed to match."""
    _change_a_row(backup)
    digest = hashlib.sha256((backup / DATABASE_FILE).read_bytes()).hexdigest()
    size = (backup / DATABASE_FILE).stat().st_size

    def fix(obj: dict[str, Any]) -> None:
        obj["files"][DATABASE_FILE] = {"size": size, "sha256": digest}

    _reseal(backup, fix)


def _first_tarball(backup: Path) -> Path:
    return backup / blob_path(sorted(Manifest.read(backup).tarballs)[0])


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    "flipped byte in a tarball": (lambda b: _flip(_first_tarball(b)), "is damaged: its sha512"),
    "missing tarball": (lambda b: _first_tarball(b).unlink(), "is missing from the backup"),
    "missing key file": (
        lambda b: next((b / "signing").glob("*.pem")).unlink(),
        "signing/",
    ),
    "edited manifest": (
        lambda b: (b / MANIFEST).write_text(
            (b / MANIFEST).read_text().replace('"rows": 7', '"rows": 8', 1)
        ),
        "was edited or damaged",
    ),
    "truncated database": (
        lambda b: os.truncate(b / DATABASE_FILE, (b / DATABASE_FILE).stat().st_size // 2),
        "truncated or replaced",
    ),
    "row changed": (_change_a_row, "registry.sqlite3 is damaged"),
    "row changed, manifest rehashed": (
        _row_changed_and_manifest_rehashed,
        "table packages: its rows differ",
    ),
    "record edited": (lambda b: _flip(b / "config.r13", 6), "config.r13 is damaged"),
    "a foreign file": (lambda b: (b / "notes.txt").write_text("hi"), "notes.txt is in the backup"),
    "no manifest": (lambda b: (b / MANIFEST).unlink(), "has no manifest.json"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupted_backup_is_refused_naming_what_is_wrong_and_restores_nothing(
    seeded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    damage, message = CORRUPTIONS[case]
    backup = copy_backup(seeded[1], tmp_path / "b")
    damage(backup)
    target = tmp_path / "target"
    assert r13("--data", str(target), "restore", str(backup), "--quiet") == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not target.exists() or list(target.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if ".restore-" in p.name] == []  # no staging left
    # --check refuses it the same way.
    assert r13("--data", str(target), "restore", str(backup), "--check", "--quiet") == 2
    assert message in capsys.readouterr().err


def test_restore_refuses_a_non_empty_data_dir_saying_what_is_there(
    seeded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "used"
    target.mkdir()
    (target / "config.r13").write_bytes(b"x" * 13)
    assert r13("--data", str(target), "restore", str(seeded[1]), "--quiet") == 2
    err = capsys.readouterr().err
    assert "is not empty: it holds config.r13" in err
    assert [p.name for p in target.iterdir()] == ["config.r13"]


def test_backup_refuses_a_destination_that_holds_something(
    seeded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "x").write_text("")
    assert r13("--data", str(seeded[0]), "backup", str(dest), "--quiet") == 2
    assert "is not empty" in capsys.readouterr().err


def test_a_backup_that_fails_midway_leaves_nothing_that_looks_like_a_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with open_services(settings(data)) as sv:
        for i in range(3):
            publish(sv, f"p{i}", "1.0.0")
        import r13core.backup.create as create
        import r13core.backup.datafiles as datafiles

        copied = []

        def failing(*args: Any, **kwargs: Any) -> None:
            copied.append(args)
            if len(copied) == 2:
                raise OSError(28, "No space left on device")
            real(*args, **kwargs)

        real = datafiles.copy_verified
        monkeypatch.setattr(create, "copy_verified", failing)
        with pytest.raises(OSError, match="No space"):
            create_backup(source_of(sv), tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no DEST, no partial
    assert not (data / ".r13-backup-staging").exists()


def test_tarballs_deleted_after_the_snapshot_are_still_in_the_backup(tmp_path: Path) -> None:
    """The snapshot's tarballs are staged before the hold ends: an unpublish and a sweep
    that run while the tarballs are being copied cannot take them out of the backup."""
    data = tmp_path / "data"
    with open_services(settings(data)) as sv:
        for i in range(3):
            publish(sv, f"gone{i}", "1.0.0", 5000)

        class UnpublishMeanwhile:
            def stage(self, name: str, total: int) -> None:
                if name != "tarballs":
                    return
                for i in range(3):
                    pkg = PackageName.parse(f"gone{i}")
                    rev = json.loads(sv.registry.packument_for_write(pkg).body)["_rev"]
                    sv.registry.unpublish_package(pkg, rev, actor=Actor.cli())
                sv.registry.sweep(alone=True)
                assert list(sv.blobs.hashes()) == []  # the store no longer has them

            def advance(self, done: int) -> None:
                pass

            def close(self) -> None:
                pass

        result = create_backup(source_of(sv), tmp_path / "b", progress=UnpublishMeanwhile())
    assert len(result.manifest.tarballs) == 3
    assert r13("--data", str(tmp_path / "r"), "restore", str(tmp_path / "b"), "--quiet") == 0
    with open_services(settings(tmp_path / "r")) as sv:
        assert sorted(sv.storage.blob_refs()) == sorted(sv.blobs.hashes())
        assert len(list(sv.blobs.hashes())) == 3
        # The restore left them in the backup's layout (sha512/ab/cd/): the store's own
        # start-up sweep keeps every one, and each reads back as its name says.
        assert maintenance.sweep(sv.storage, sv.blobs, min_age=0, alone=True) == 0
        for h in sv.storage.blob_refs():
            path = sv.blobs.path(h)
            assert path is not None and "sha512" in path.parts
            assert hashlib.sha512(path.read_bytes()).hexdigest() == h


def test_backup_with_link_shares_the_tarballs_inodes(seeded: tuple[Path, Path],
                                                      tmp_path: Path) -> None:  # fmt: skip
    data, _ = seeded
    assert r13("--data", str(data), "backup", str(tmp_path / "l"), "--link", "--quiet") == 0
    m = Manifest.read(tmp_path / "l")
    sha = sorted(m.tarballs)[0]
    live = FileBlobStore(data / "blobs").path(sha)
    assert live is not None
    assert os.stat(live).st_ino == os.stat(tmp_path / "l" / blob_path(sha)).st_ino


# -- settings and automatic backups -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "ms"),
    [("", 0), ("0", 0), ("6h", 21_600_000), ("30m", 1_800_000), ("1d", 86_400_000),
     ("90s", 90_000), ("1500", 1500), ("2.5s", 2500), ("750ms", 0)],
)  # fmt: skip
def test_backup_every_reads_durations(raw: str, ms: int) -> None:
    if ms == 0 and raw == "750ms":
        with pytest.raises(SettingsError, match="R13_BACKUP_EVERY"):
            Settings.from_env({"R13_BACKUP_EVERY": raw})
        return
    assert Settings.from_env({"R13_BACKUP_EVERY": raw}).backup.every_ms == ms


@pytest.mark.parametrize("raw", ["soon", "-1h", "5x"])
def test_a_bad_backup_setting_stops_start_up_named(raw: str) -> None:
    with pytest.raises(SettingsError, match="R13_BACKUP_EVERY"):
        Settings.from_env({"R13_BACKUP_EVERY": raw})
    with pytest.raises(SettingsError, match="R13_BACKUP_KEEP"):
        Settings.from_env({"R13_BACKUP_KEEP": "0"})


def _fake_backup(directory: Path, ts: float) -> Path:
    path = directory / backup_name(ts)
    path.mkdir(parents=True)
    (path / MANIFEST).write_text("{}")
    return path


def test_prune_keeps_the_newest_and_removes_partial_ones(tmp_path: Path) -> None:
    made = [_fake_backup(tmp_path, 1_800_000_000 + 3600 * i) for i in range(5)]
    (tmp_path / ".r13-backup-x.partial-abcd").mkdir()
    (tmp_path / "unrelated").mkdir()
    gone = prune(tmp_path, 2)
    assert gone == made[:3]
    assert [p for _, p in backups_in(tmp_path)] == made[3:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [made[3].name, made[4].name, "unrelated"]
    )


def test_the_next_automatic_backup_is_due_an_interval_after_the_newest(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    auto = AutoBackups(tmp_path / "data", tmp_path / "b", interval=3600, run=dict,
                       clock=lambda: now[0])  # fmt: skip
    assert auto.due_in() == 0  # none yet: at once
    _fake_backup(tmp_path / "b", now[0] - 600)
    assert auto.due_in() == pytest.approx(3000, abs=0.01)
    now[0] += 4000
    assert auto.due_in() == 0

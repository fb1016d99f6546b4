"""r13's signing key ring (r13core/signing_keys.py): made once, private, rotated with an audit."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor, AuditLog
from r13core.database import open_database
from r13core.errors import OwnershipError, SignatureError
from r13core.signatures import parse_time, verify_version
from r13core.signing_keys import RING, ROTATION_GRACE, SigningKeys, iso


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(open_database(tmp_path / "db"))


def ring_at(tmp_path: Path, audit: AuditLog, clock: Clock | None = None) -> SigningKeys:
    return SigningKeys(tmp_path / "data" / "signing", audit, clock=clock or Clock())


def doc_signed_by(keys: SigningKeys, name: str = "pkg", version: str = "1.0.0") -> dict[str, Any]:
    integrity = "sha512-" + "A" * 86 + "=="
    sig = keys.sign(name, version, integrity).as_json()
    return {"name": name, "version": version, "dist": {"integrity": integrity, "signatures": [sig]}}


def test_the_first_use_makes_one_private_key_and_records_it(
    tmp_path: Path, audit: AuditLog
) -> None:
    keys = ring_at(tmp_path, audit)
    assert not keys.directory.exists()
    doc = doc_signed_by(keys)
    assert verify_version(doc, keys.public_keys()) == (keys.active_keyid(),)
    assert stat.S_IMODE(os.stat(keys.directory).st_mode) == 0o700
    files = [p for p in keys.directory.iterdir() if not p.name.startswith(".")]
    assert sorted(p.suffix for p in files) == [".json", ".pem"]
    for path in keys.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    pem = next(p for p in files if p.suffix == ".pem").read_text()
    assert "PRIVATE KEY" in pem and "PRIVATE KEY" not in (keys.directory / RING).read_text()
    events = audit.page()["events"]
    assert [(e["action"], e["actor"], e["target"]) for e in events] == [
        ("signing.create", "r13", keys.active_keyid())
    ]
    # Another process (another object over the same dir) uses the same key, makes none.
    again = ring_at(tmp_path, audit)
    assert again.ensure() is False
    assert again.active_keyid() == keys.active_keyid()
    assert len(audit.page()["events"]) == 1


def test_rotation_keeps_old_signatures_verifiable_and_signs_new_ones_with_the_new_key(
    tmp_path: Path, audit: AuditLog
) -> None:
    clock = Clock()
    keys = ring_at(tmp_path, audit, clock)
    before = doc_signed_by(keys, version="1.0.0")
    old = keys.active_keyid()
    published_before = iso(clock.now - 10)

    clock.now += 3600
    new, expired = keys.rotate(Actor("ops", "192.0.2.1"))
    assert expired.keyid == old and new.keyid != old
    assert new.keyid == keys.active_keyid()
    assert expired.expires == iso(clock.now + ROTATION_GRACE)
    listed = keys.public_keys()
    assert [k.keyid for k in listed] == [old, new.keyid]
    assert [k.expires for k in listed] == [expired.expires, None]
    # The old signature still verifies for a version published before the rotation...
    assert verify_version(before, listed, published=published_before) == (old,)
    # ...and would not for a version claiming a publish after the old key's expiry.
    late = iso(parse_time(expired.expires or "", "x").timestamp() + 1)
    with pytest.raises(SignatureError, match="expired"):
        verify_version(before, listed, published=late)
    after = doc_signed_by(keys, version="2.0.0")
    assert verify_version(after, listed, published=iso(clock.now)) == (new.keyid,)

    (event,) = [e for e in audit.page()["events"] if e["action"] == "signing.rotate"]
    assert (event["actor"], event["ip"], event["target"]) == ("ops", "192.0.2.1", new.keyid)
    assert event["detail"] == {"previous": old, "expires": expired.expires}


def test_a_process_sees_a_rotation_made_by_another_on_its_next_signature(
    tmp_path: Path, audit: AuditLog
) -> None:
    worker = ring_at(tmp_path, audit)
    first = worker.sign("a", "1.0.0", "sha512-x").keyid
    admin = ring_at(tmp_path, audit)
    new, _ = admin.rotate(Actor.cli())
    assert worker.sign("a", "1.0.1", "sha512-x").keyid == new.keyid != first
    assert [k.keyid for k in worker.public_keys()] == [first, new.keyid]


def test_two_rotations_keep_every_old_key(tmp_path: Path, audit: AuditLog) -> None:
    keys = ring_at(tmp_path, audit)
    ids = [keys.active_keyid()]
    for _ in range(2):
        ids.append(keys.rotate(Actor.cli())[0].keyid)
    ring = keys.ring()
    assert [e.public.keyid for e in ring] == ids
    assert [e.public.expires is None for e in ring] == [False, False, True]
    assert len({e.file for e in ring}) == 3
    assert all((keys.directory / e.file).is_file() for e in ring)


def test_a_ring_file_others_may_write_is_refused(tmp_path: Path, audit: AuditLog) -> None:
    keys = ring_at(tmp_path, audit)
    keys.ensure()
    ring = keys.directory / RING
    os.chmod(ring, 0o666)
    with pytest.raises(OwnershipError):
        ring_at(tmp_path, audit).public_keys()


def test_a_ring_naming_a_key_that_does_not_match_is_refused(
    tmp_path: Path, audit: AuditLog
) -> None:
    keys = ring_at(tmp_path, audit)
    keys.ensure()
    other = ring_at(tmp_path / "other", audit)
    other.ensure()
    doc = json.loads((keys.directory / RING).read_text())
    # The ring points at another ring's private key file (copied in): not its key.
    (other_file,) = [e.file for e in other.ring()]
    (keys.directory / "swapped.pem").write_bytes((other.directory / other_file).read_bytes())
    os.chmod(keys.directory / "swapped.pem", 0o600)
    doc["keys"][0]["file"] = "swapped.pem"
    (keys.directory / RING).write_text(json.dumps(doc))
    with pytest.raises(Exception, match="does not hold key"):
        ring_at(tmp_path, audit).sign("a", "1.0.0", "sha512-x")


def test_a_temp_file_left_by_a_crash_is_not_the_ring(tmp_path: Path, audit: AuditLog) -> None:
    keys = ring_at(tmp_path, audit)
    keys.ensure()
    before = keys.active_keyid()
    # A rotation that died before its rename leaves only a temp file beside the ring.
    (keys.directory / f".{RING}.deadbeef.tmp").write_text('{"keys": []}')
    assert ring_at(tmp_path, audit).active_keyid() == before

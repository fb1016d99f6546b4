"""The blob store contract: content-addressed tarball bytes, holds and sweeps.

A backend's test class mixes in :class:`BlobStoreContract` and provides a
``blobs`` fixture giving a fresh, empty store (tests/test_storage_sqlite.py).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from r13core.errors import InvalidValue
from r13core.storage.blobs import BlobStore

SHA_A = "a" * 128


class BlobStoreContract:
    """Behaviour of :class:`r13core.storage.blobs.BlobStore`."""

    @pytest.fixture
    def blobs(self) -> BlobStore:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_put_stores_bytes_under_their_sha512(self, blobs: BlobStore) -> None:
        data = b"tarball bytes"
        info = blobs.put(data)
        assert info.sha512 == hashlib.sha512(data).hexdigest()
        assert info.size == len(data)
        assert info.created
        assert blobs.read(info.sha512) == data
        path = blobs.path(info.sha512)
        assert path is not None and path.read_bytes() == data
        assert list(blobs.hashes()) == [info.sha512]

    def test_putting_the_same_bytes_again_is_a_no_op(self, blobs: BlobStore) -> None:
        first = blobs.put(b"same")
        second = blobs.put(b"same")
        assert second.sha512 == first.sha512
        assert not second.created
        assert list(blobs.hashes()) == [first.sha512]

    def test_absent_blob_reads_as_none(self, blobs: BlobStore) -> None:
        assert blobs.read(SHA_A) is None
        assert blobs.path(SHA_A) is None
        assert not blobs.delete(SHA_A)

    def test_a_name_that_is_not_a_sha512_is_refused(self, blobs: BlobStore) -> None:
        for bad in ("../../etc/passwd", "A" * 128, "a" * 127, ""):
            with pytest.raises(InvalidValue):
                blobs.path(bad)

    def test_delete_removes_a_blob(self, blobs: BlobStore) -> None:
        info = blobs.put(b"x")
        assert blobs.delete(info.sha512)
        assert blobs.read(info.sha512) is None

    def test_sweep_removes_only_old_unknown_blobs(self, blobs: BlobStore) -> None:
        keep = blobs.put(b"referenced")
        orphan = blobs.put(b"orphan")
        assert blobs.sweep_orphans({keep.sha512}, min_age=3600) == 0  # too fresh
        assert blobs.sweep_orphans({keep.sha512}, min_age=0) == 1
        assert blobs.read(orphan.sha512) is None
        assert blobs.read(keep.sha512) == b"referenced"

    def test_a_candidate_referenced_meanwhile_is_kept(self, blobs: BlobStore) -> None:
        late = blobs.put(b"a publish committed between the listing and the removal")
        candidates = blobs.orphans(set(), min_age=0)
        assert len(candidates) == 1
        with blobs.sweeping():
            assert blobs.remove_orphans(candidates, {late.sha512}, min_age=0) == 0
        assert blobs.read(late.sha512) is not None
        with blobs.sweeping():
            assert blobs.remove_orphans(candidates, set(), min_age=0) == 1
        assert blobs.read(late.sha512) is None

    def test_a_held_store_can_be_held_again_and_swept_after(self, blobs: BlobStore) -> None:
        with blobs.hold(), blobs.hold():  # publishes share it
            blobs.put(b"in flight")
        assert blobs.sweep_orphans(set(), min_age=0) == 1


def age_file(path: Path, seconds: float) -> None:
    """Make ``path`` look ``seconds`` old (for sweep tests)."""
    then = time.time() - seconds
    os.utime(path, (then, then))

"""Keeping the blob store to what the database refers to.

Two paths remove tarball files, both under the blob store's exclusive lock
(``BlobStore.sweeping``), which no publish holds between writing its file and
committing its row:

* :func:`delete_unpublished`, right after an unpublish commits: the removed
  versions' files, unless another row shares them;
* :func:`sweep`, at start and every ``R13_SWEEP_INTERVAL`` in one elected
  worker (r13core/sweeper.py): every file no committed row refers to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from r13core.storage.blobs import BlobStore
from r13core.storage.packages import PackageStorage

log = logging.getLogger("r13.registry")


def delete_unpublished(
    storage: PackageStorage, blobs: BlobStore, name: str, versions: Iterable[str]
) -> None:
    """After the commit that unpublished ``versions`` of ``name``: delete their files.

    A version's tarball is the blob its first publish recorded (the tombstone
    keeps that hash). It is deleted at once unless another row refers to it;
    if this process dies first, the file is an orphan the next sweep removes.
    """
    versions = list(versions)
    hashes = {h for v in versions if (h := storage.used_version(name, v)) is not None}
    try:
        with blobs.sweeping():  # no publish is between its put and its commit now
            for sha512 in hashes - storage.blobs_in_use(hashes):
                blobs.delete(sha512)
    except OSError:
        log.exception("deleting the tarballs of %s %s; the sweep will", name, versions)


def sweep(storage: PackageStorage, blobs: BlobStore, *, min_age: float, alone: bool) -> int:
    """Remove files in the blob store that no committed tarball row refers to.

    Orphans are blobs of publishes that died before their commit (or whose
    prompt deletion at unpublish did not happen), temp files, and anything
    else in the store. With ``alone`` the caller guarantees that no other
    process uses the data dir (``r13 serve`` holds the instance lock
    exclusively, :mod:`r13core.locks`): every orphan goes whatever its age,
    and empty directories too. Otherwise only files older than ``min_age``
    seconds go. Either way the references are read again under the blob
    store's exclusive lock. Returns how many files went.
    """
    age = 0.0 if alone else min_age
    candidates = blobs.orphans(storage.blob_refs(), min_age=age)
    removed = 0
    if candidates:
        with blobs.sweeping():
            known = storage.blob_refs()
            removed = blobs.remove_orphans(candidates, known, min_age=age)
    if alone:
        blobs.prune()
    return removed


__all__ = ["delete_unpublished", "sweep"]

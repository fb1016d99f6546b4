"""The data dir is its owner's alone: files 0600, directories 0700, umask 0077.

The data dir holds password hashes and live tokens (``registry.sqlite3`` and
its WAL), the first admin key, the live record and the blobs. Another local
user must not read any of it nor place anything in it. So:

* :func:`private_umask` sets the process umask to 0077 (``r13`` and the
  gunicorn workers call it at start), and every file r13 creates also asks
  for mode 0600 (directories 0700) explicitly, for embedders that keep their
  own umask;
* :func:`secure_data_dir` runs before anything opens the data dir. It refuses
  (:class:`~r13core.errors.OwnershipError`) a dir that belongs to another user
  or that group or others may write — anyone who can write the dir can
  replace r13's files under it. A dir of ours that others may only read or
  enter (an install made before this rule, under a 022 umask) is narrowed to
  0700, and then every file and directory r13 owns under it is narrowed to
  0600/0700 once;
* :func:`open_private` opens a file r13 shares between its processes (the
  key-cache generation counter, lock files) only if it is a regular file of
  ours that nobody else may write. The C core applies the same rule to its
  segments and files (``csrc/shm.c``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Final

from r13core.errors import OwnershipError

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
UMASK: Final = 0o077


def private_umask() -> int:
    """Set the process umask to 0077; the previous one."""
    return os.umask(UMASK)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory, so a rename or a new entry in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dirs(path: Path, *, durable: bool = False) -> None:
    """Create ``path`` and any missing parents with mode 0700 (existing ones are left).

    ``durable``: fsync the parent of each directory made (or made meanwhile by another
    process), so the new entries survive a power cut — a file renamed into a new
    directory is only as durable as the directory's own entry.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)
        if durable:
            fsync_dir(directory.parent)


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def secure_data_dir(path: Path) -> list[str]:
    """Create ``path`` (0700) or check it; narrow an older, too open install.

    Returns what was changed, one sentence per change, for a notice. Raises
    OwnershipError for a dir of another user or one that group or others may
    write (nothing is changed then).
    """
    make_private_dirs(path)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise OwnershipError(f"data dir {path} is not a directory")
    euid = os.geteuid()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != euid:
        raise OwnershipError(
            f"data dir {path} belongs to {_owner(st.st_uid)}, not to {_owner(euid)}: run r13 "
            "as the user that owns it (or chown -R it to the user that runs r13)"
        )
    if mode & 0o022:
        raise OwnershipError(
            f"data dir {path} has mode {mode:04o}: group or other users may write it, so they "
            f"could replace r13's files (keys, passwords, blobs). Run `chmod 700 {path}` "
            "and check that nothing in it was changed by someone else"
        )
    if not mode & 0o077:
        return []
    os.chmod(path, DIR_MODE)
    changes = [f"narrowed data dir {path} from {mode:04o} to 0700"]
    narrowed = _narrow_tree(path, euid)
    if narrowed:
        changes.append(f"narrowed {narrowed} file(s) and dir(s) under it to 0600/0700")
    return changes


def _narrow_tree(root: Path, euid: int) -> int:
    """chmod every file (0600 at most) and dir (0700) of ours under ``root``; how many."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue
            if st.st_uid != euid or not st.st_mode & 0o077:
                continue
            if stat.S_ISDIR(st.st_mode):
                os.chmod(full, DIR_MODE)
            elif stat.S_ISREG(st.st_mode):
                os.chmod(full, stat.S_IMODE(st.st_mode) & 0o700)
            else:
                continue  # symlinks, sockets, fifos: left as they are
            count += 1
    return count


def narrow_file(path: Path | str) -> None:
    """Check a file r13 keeps (if it exists) as :func:`open_private` does, without opening it.

    For files another library opens (SQLite's database, -wal and -shm): an open
    and close here would drop SQLite's POSIX locks on them in this process.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or mode & 0o022:
        raise OwnershipError(
            f"{path} belongs to {_owner(st.st_uid)} with mode {mode:04o} (or is not a regular "
            f"file): r13 only uses files of {_owner(os.geteuid())} that no one else may write"
        )
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def open_private(path: Path | str, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """Open a file r13 shares between its processes; OwnershipError unless it is private.

    Never through a symlink; created with mode 0600. An existing file must be a
    regular file of this user that group and others may not write; read bits
    for them are removed (older versions made some files 0644).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink where r13 keeps a file
            raise OwnershipError(f"{path} is a symlink; r13 only uses its own files") from None
        raise
    try:
        st = os.fstat(fd)
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or mode & 0o022:
            raise OwnershipError(
                f"{path} belongs to {_owner(st.st_uid)} with mode {mode:04o}: only files of "
                f"{_owner(os.geteuid())} that no one else may write are used. Stop r13, remove "
                "it, and start again"
            )
        if mode & 0o077:
            os.fchmod(fd, mode & 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd

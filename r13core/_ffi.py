"""The one module that imports the compiled C core.

It checks that the build matches this package (version and, in a source
checkout, the C sources) and turns the core's negative return codes into
the exceptions of :mod:`r13core.errors`. Everything else in r13core uses
the typed wrappers built on :func:`check`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

from r13core._version import __version__
from r13core.errors import (
    FrameError,
    InvalidValue,
    LimiterFull,
    NativeOSError,
    OwnershipError,
    R13Error,
    RecordFileError,
)

_REBUILD = "rebuild it with `make build` (or reinstall with `pip install .`)"

try:
    _native = importlib.import_module("r13core._native")
except ImportError as exc:  # pragma: no cover - exercised by a fresh checkout only
    raise ImportError(f"r13core's C core (r13core._native) is not built: {_REBUILD}") from exc

ffi: Any = _native.ffi
lib: Any = _native.lib

__all__ = [
    "NativeHandle",
    "check",
    "check_attach",
    "ffi",
    "lib",
    "raise_for",
    "segment_name",
    "strerror",
]


def _verify_build() -> None:
    built = ffi.string(lib.r13_build_version).decode()
    if built != __version__:
        raise ImportError(
            f"r13core._native was built for r13 {built} but this is r13 {__version__}: {_REBUILD}"
        )
    csrc = Path(__file__).resolve().parent.parent / "csrc"
    if (csrc / "r13.h").is_file() and (csrc / "build_native.py").is_file():
        # A source checkout (editable install): the build must match the sources.
        import hashlib

        digest = hashlib.sha256()
        for path in sorted(csrc.glob("*.[ch]")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        if digest.hexdigest()[:16] != ffi.string(lib.r13_build_source_hash).decode():
            raise ImportError(f"r13core._native is older than the C sources in {csrc}: {_REBUILD}")


_verify_build()

# Codes, by name, as the C compiler saw them.
OK: int = lib.R13_OK
EINVAL: int = lib.R13_EINVAL
ERANGE: int = lib.R13_ERANGE
EVERSION: int = lib.R13_EVERSION
EMODE: int = lib.R13_EMODE
ESIZE: int = lib.R13_ESIZE
EIO: int = lib.R13_EIO
ESHM: int = lib.R13_ESHM
EFULL: int = lib.R13_EFULL
ETRUNC: int = lib.R13_ETRUNC
ETYPE: int = lib.R13_ETYPE
ELONG: int = lib.R13_ELONG
EBUFSZ: int = lib.R13_EBUFSZ
EUTF8: int = lib.R13_EUTF8
EVALUE: int = lib.R13_EVALUE
ECLOCK: int = lib.R13_ECLOCK
EOWNER: int = lib.R13_EOWNER

_FRAME_CODES = {ETRUNC, ETYPE, ELONG, EUTF8}
_VALUE_CODES = {EINVAL, ERANGE, EVERSION, EMODE, EBUFSZ, EVALUE}
_OS_CODES = {EIO, ESHM, ECLOCK}


def strerror(code: int) -> str:
    """The C core's text for ``code``."""
    return str(ffi.string(lib.r13_strerror(code)).decode())


def raise_for(code: int, context: str = "") -> NoReturn:
    """Raise the exception that stands for C return code ``code``."""
    text = strerror(code)
    message = f"{context}: {text}" if context else text
    if code in _FRAME_CODES:
        raise FrameError(message, code)
    if code in _VALUE_CODES:
        raise InvalidValue(message)
    if code == ESIZE:
        raise RecordFileError(message)
    if code == EFULL:
        raise LimiterFull(message)
    if code == EOWNER:
        raise OwnershipError(message)
    if code in _OS_CODES:
        err = ffi.errno
        raise NativeOSError(err, f"{message} ({os.strerror(err)})" if err else message)
    raise R13Error(f"{message} (code {code})")


def check(code: int, context: str = "") -> None:
    """Return if ``code`` is 0, else raise the matching exception."""
    if code != OK:
        raise_for(code, context)


def segment_name(data_dir: str | os.PathLike[str], part: str) -> str:
    """The POSIX shared-memory name of segment ``part`` of ``data_dir`` (``/r13-...``)."""
    out = ffi.new("char[]", 128)
    check(
        lib.r13_shm_name(os.fsencode(data_dir), part.encode(), out, 128),
        f"naming the {part} segment of {os.fsdecode(data_dir)}",
    )
    return str(ffi.string(out).decode())


def _not_private(path: str) -> str | None:
    """What is wrong with ``path`` as a private object of this user (None: fine or absent)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    import stat

    problems = []
    if stat.S_ISLNK(st.st_mode):
        problems.append("is a symlink")
    elif not stat.S_ISREG(st.st_mode):
        problems.append("is not a regular file")
    if st.st_uid != os.geteuid():
        try:
            import pwd

            owner = f"{pwd.getpwuid(st.st_uid).pw_name} (uid {st.st_uid})"
        except KeyError:
            owner = f"uid {st.st_uid}"
        problems.append(f"belongs to {owner}, not to uid {os.geteuid()}")
    if st.st_mode & 0o077 and not stat.S_ISLNK(st.st_mode):
        mode = stat.S_IMODE(st.st_mode)
        problems.append(f"has mode {mode:04o} (others may use it; r13 makes 0600)")
    return ", ".join(problems) or None


def check_attach(code: int, data_dir: str | os.PathLike[str], part: str, what: str) -> None:
    """Like :func:`check` for opening a shared segment, naming the culprit on R13_EOWNER.

    ``part`` is the segment's name in the C core (``record``, ``metrics``,
    ``rl-<name>``); ``what`` says what it holds, for the message.
    """
    if code == OK:
        return
    directory = os.fsdecode(data_dir)
    if code != EOWNER:
        raise_for(code, f"opening {what} in {directory}")
    candidates = [os.path.join(directory, ".r13-shm.id")]
    with contextlib.suppress(R13Error):  # else the id file is at fault: listed below
        candidates.insert(0, "/dev/shm" + segment_name(data_dir, part))
    candidates += [os.path.join(directory, f".r13-{part}.{s}") for s in ("init", "users")]
    if part == "record":
        candidates.append(os.path.join(directory, "config.r13"))
    found = [f"{p} {why}" for p in candidates if (why := _not_private(p)) is not None]
    culprits = "; ".join(found) if found else "one of " + ", ".join(candidates)
    raise OwnershipError(
        f"refusing {what} of {directory}: {culprits}. Another local user may have made it "
        "to read or change r13's live state. Stop every r13 process of this data dir, "
        "remove it (as root if another user owns it), make sure only r13's user can write "
        f"{directory}, and start again"
    )


class NativeHandle:
    """Life of an object that holds an open C handle (a shared-memory segment).

    Subclasses set ``self._open = True`` once their C open succeeded and
    implement :meth:`_release`. ``close()`` is idempotent; the object is a
    context manager and releases the handle when collected.
    """

    _open = False

    def _release(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Detach from the shared segment (the last process out removes it)."""
        if self._open:
            self._open = False
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if self._open:
            self.close()

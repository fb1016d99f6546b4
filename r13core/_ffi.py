"""The one module that imports the compiled C core.

It checks that the build matches this package (version and, in a source
checkout, the C sources) and turns the core's negative return codes into
the exceptions of :mod:`r13core.errors`. Everything else in r13core uses
the typed wrappers built on :func:`check`.
"""

from __future__ import annotations

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

__all__ = ["NativeHandle", "check", "ffi", "lib", "raise_for", "strerror"]


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
    if code in _OS_CODES:
        err = ffi.errno
        raise NativeOSError(err, f"{message} ({os.strerror(err)})" if err else message)
    raise R13Error(f"{message} (code {code})")


def check(code: int, context: str = "") -> None:
    """Return if ``code`` is 0, else raise the matching exception."""
    if code != OK:
        raise_for(code, context)


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

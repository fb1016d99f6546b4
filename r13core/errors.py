"""The errors r13core raises. No HTTP here: the app maps them to statuses."""

from __future__ import annotations


class R13Error(Exception):
    """Base of every error r13core raises on purpose."""


class InvalidValue(R13Error, ValueError):
    """A value is out of range or malformed (a field, flag, offset, name...)."""


class RecordFileError(R13Error):
    """The record file exists but is not a 13-byte record."""


class NativeOSError(R13Error, OSError):
    """The C core failed on a system call (file, shared memory, clock)."""


class FrameError(R13Error, ValueError):
    """A live-channel frame could not be decoded or encoded.

    ``code`` is the C core's negative error code (see ``r13core._ffi``).
    """

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class LimiterFull(R13Error):
    """The rate limiter's table is full of busy entries."""

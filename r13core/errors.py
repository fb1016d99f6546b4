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


class OwnershipError(R13Error, PermissionError):
    """Shared state of a data dir is not private to this user, so r13 refuses to use it.

    A shared-memory segment, a lock file or a data-dir file is owned by another
    user, is a symlink, or other users may write it (or, for the data dir
    itself, it belongs to someone else or is group/world-writable). The message
    names the object and what to do.
    """


class FrameError(R13Error, ValueError):
    """A live-channel frame could not be decoded or encoded.

    ``code`` is the C core's negative error code (see ``r13core._ffi``).
    """

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class LimiterFull(R13Error):
    """A shared table is full: the rate limiter's (of busy keys) or the metrics' process slots."""


# -- registry errors (docs/registry-api.md); app/errors.py maps them to statuses --


class InvalidName(InvalidValue):
    """A package name (or a name-derived part such as a file name) breaks npm's rules."""


class InvalidPublish(InvalidValue):
    """A publish body or its tarball failed a check; the message names the check."""


class BadRequest(InvalidValue):
    """A request body is malformed in a way that is not about a publish."""


class NotFound(R13Error):
    """The package, version, tag, tarball, key or advisory does not exist."""


class Conflict(R13Error):
    """The request conflicts with the current state."""


class VersionExists(Conflict):
    """The version was published before (with other bytes, or then unpublished)."""


class RevConflict(Conflict):
    """The ``_rev`` the client sent is not the package's current one."""


class NameTaken(Conflict):
    """A user name or key id that a user or a key has (or had): the two never share one."""


class Unauthorized(R13Error):
    """No usable credentials. ``www_authenticate`` is the challenge to send, if any."""

    def __init__(
        self, message: str = "authentication required", *, www_authenticate: str | None = "Bearer"
    ) -> None:
        super().__init__(message)
        self.www_authenticate = www_authenticate


class Forbidden(R13Error):
    """The caller is known but may not do this."""


class PayloadTooLarge(R13Error):
    """A body or tarball exceeds a size limit."""


class UnsupportedMediaType(R13Error):
    """The body's content type or encoding is not one r13 reads."""


class TerminalOff(Forbidden):
    """The record's terminalMode is 0: the terminal is refused (locally and remotely)."""


class RequestTimeout(R13Error):
    """The client did not send its whole request in time (a slow or stalled client)."""


# -- uplink errors (docs/uplinks.md) --


class UpstreamError(R13Error):
    """The upstream registry could not give a usable answer (down, 5xx, reset, bad bytes).

    Raised only when no cached copy could stand in; the app answers 502.
    """


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the uplink's timeouts; the app answers 504."""


class IntegrityMismatch(UpstreamError):
    """Bytes from the upstream do not match the integrity its packument states (never cached)."""


class LoopDetected(R13Error):
    """A request already passed through this registry (its ``Via`` names us): a proxy loop."""


class ExistsUpstream(Conflict):
    """A first publish of a name the upstream already has, without the admin override."""


class SignatureError(R13Error):
    """A version's registry signature is missing, made by an unknown or expired key, or
    does not verify (r13core/signatures.py). ``reason`` is one of ``missing``,
    ``unknown-key``, ``expired-key``, ``invalid``, ``malformed``.

    Raised when r13 checks an upstream's version before serving or caching it: the
    version is refused (HTTP 502, the upstream sent something that cannot be trusted).
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class SchemaTooNew(R13Error):
    """The database's schema is newer than this r13 knows: refused, nothing touched."""


class SchemaPending(R13Error):
    """The database lacks migrations and R13_AUTO_MIGRATE=0: run ``r13 db migrate``."""


class StorageUnavailable(R13Error):
    """The database server cannot be reached (down, refused, timed out); the app answers 503."""

"""r13core: everything the r13 registry does, without HTTP.

The C core (record, rate limiter, frame codec) is reached only through the
typed wrappers in :mod:`r13core.config`, :mod:`r13core.ratelimit` and
:mod:`r13core.frames`.
"""

from r13core._version import __version__

__all__ = ["__version__"]

"""How a backup or a restore reports progress: stages, each with a total of bytes.

r13core only calls these methods; the ``r13`` command line draws them as a
progress bar (app/cli/backup_cmd.py), the automatic backups log them.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives a backup's or a restore's progress."""

    def stage(self, name: str, total: int) -> None:
        """A new stage begins (``"tarballs"``, ``"verify"`` ...) with ``total`` bytes to go."""

    def advance(self, done: int) -> None:
        """``done`` more bytes of the current stage are done."""

    def close(self) -> None:
        """The work ended (done or failed)."""


class Silent:
    """No progress shown."""

    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass

"""The advisories concern (r13core/storage/advisories.py) in PostgreSQL.

Table ``advisories (id IDENTITY, package, data)`` indexed by package; ids are
never reused (an identity column only grows).
"""

from __future__ import annotations

import json

from r13core.storage.advisories import AdvisoryRecord, AdvisoryStorage
from r13core.storage.packages import JSONDict
from r13core.storage.postgres.connection import PgDatabase


class PgAdvisories(PgDatabase, AdvisoryStorage):
    """Advisories in PostgreSQL."""

    def add_advisory(self, package: str, data: JSONDict) -> int:
        """Store an advisory; its id."""
        (advisory_id,) = self.fetchone(
            "INSERT INTO advisories (package, data) VALUES (%s, %s) RETURNING id",
            (package, json.dumps(data)),
        )
        return int(advisory_id)

    def advisories(self, packages: list[str] | None = None) -> list[AdvisoryRecord]:
        """Advisories for ``packages`` (all when None), by id."""
        if packages is None:
            rows = self.fetchall("SELECT id, package, data FROM advisories ORDER BY id")
        else:
            rows = self.fetchall(
                "SELECT id, package, data FROM advisories WHERE package = ANY(%s) ORDER BY id",
                (sorted(set(packages)),),
            )
        return [AdvisoryRecord(int(r[0]), r[1], json.loads(r[2])) for r in rows]

    def remove_advisory(self, advisory_id: int) -> bool:
        """Delete an advisory."""
        return self.execute("DELETE FROM advisories WHERE id = %s", (advisory_id,)) > 0

"""One permission comparison in the code base: r13core/access.py decides who may do what.

Everywhere else asks it (``Policy.authorize``, ``is_admin``, ``grants``, ``may_revoke``)
instead of comparing permission levels itself, or keeping its own list of which
actions need what (the set of actions that need a package's maintainer was once
repeated in app/auth.py), so a rule changes in one place. r13core/keys.py, which
defines the levels, may compare them for a key's own ceiling (a key limited to
packages is never above ``write``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DECIDES = {"r13core/access.py", "r13core/keys.py"}
_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq, ast.Is, ast.IsNot)


def _is_level(node: ast.expr) -> bool:
    """``Permission.ADMIN`` (a level) or ``x.permission`` (a key's level)."""
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "Permission":
            return True
        return node.attr == "permission"
    return False


def permission_comparisons(source: str, filename: str = "<test>") -> list[int]:
    """The lines of ``source`` that compare a permission level."""
    lines = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(node, ast.Compare):
            continue
        if not all(isinstance(op, _ORDER) for op in node.ops):
            continue  # `in`, `not in`: membership, not a level check
        if any(_is_level(side) for side in (node.left, *node.comparators)):
            lines.append(node.lineno)
    return lines


def action_groups(source: str, filename: str = "<test>") -> list[int]:
    """The lines of ``source`` that list several ``Action`` members together."""
    lines = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Set | ast.List | ast.Tuple | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            members = [
                item
                for item in items
                if isinstance(item, ast.Attribute)
                and isinstance(item.value, ast.Name)
                and item.value.id == "Action"
            ]
            if len(members) >= 2:
                lines.append(node.lineno)
    return lines


def test_the_scan_finds_the_comparisons_it_forbids() -> None:
    source = (
        "if identity.permission < Permission.ADMIN: pass\n"
        "ok = Permission.WRITE <= level\n"
        "same = key.permission == other\n"
        "fine = action in NEEDS\n"
        "also_fine = grants(identity, Permission.WRITE)\n"
    )
    assert permission_comparisons(source) == [1, 2, 3]
    rule = (
        "OWNED = frozenset({Action.PUBLISH, Action.UNPUBLISH})\nguard.require(req, Action.READ)\n"
    )
    assert action_groups(rule) == [1]


def test_only_access_decides_permissions() -> None:
    found = []
    for folder in ("app", "r13core"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in DECIDES or name.startswith("r13core/_native"):
                continue
            source = path.read_text()
            found += [f"{name}:{line}" for line in permission_comparisons(source, name)]
            found += [f"{name}:{line} (actions)" for line in action_groups(source, name)]
    assert found == [], (
        "decide permissions in r13core/access.py (is_admin, grants, Policy): " + str(found)
    )

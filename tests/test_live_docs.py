"""docs/live.md prints each topic's JSON Schema exactly as r13core/broadcasts.py has it."""

from __future__ import annotations

import json
from pathlib import Path

from r13core.broadcasts import SCHEMAS, TOPICS

DOC = Path(__file__).resolve().parent.parent / "docs" / "live.md"


def test_every_topic_and_its_schema_is_documented() -> None:
    text = DOC.read_text()
    for name, topic in TOPICS.items():
        assert f"### `{name}` (topic {int(topic)})" in text, name
        assert json.dumps(SCHEMAS[name], indent=2) in text, name

"""Getting answers from several gunicorn workers: the placement is retried, never a check.

Which worker accepts a new connection is up to the kernel and the scheduler. Right after
a start one worker may still be importing the app while the other serves; on a loaded
machine the worker that just answered is often the only one awake when the next
connection arrives, and takes it too (`python -m bench.worker_placement` shows one worker
taking every connection of a burst). So a test that needs answers from several workers
keeps asking until they have answered, bounded by a generous time rather than by a count
a slow machine could use up, and then checks the behaviour on every answer it got.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until_answered_by(
    workers: int,
    ask: Callable[[], T],
    worker_of: Callable[[T], str],
    *,
    at_least: int = 1,
    timeout: float = 120.0,
) -> list[T]:
    """Call ``ask`` until ``workers`` different workers answered and ``at_least`` calls
    were made; every answer, in order. ``worker_of`` names the worker of an answer (the
    ``X-R13-Worker`` header under DEBUG); an answer that names none fails the test."""
    answers: list[T] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers or len(answers) < at_least:
        assert time.monotonic() < deadline, (
            f"in {timeout:.0f} s only workers {sorted(seen)} answered ({len(answers)} requests)"
        )
        answer = ask()
        worker = worker_of(answer)
        assert worker, f"an answer names no worker: {answer!r}"
        answers.append(answer)
        seen.add(worker)
    return answers

"""Deterministic crash points for the kill/resume tests.

``DBEMBED_CRASH_AT=after_copy:3`` makes the process SIGKILL itself the 3rd time it
reaches the ``after_copy`` point.  Points: after_claim, after_copy, before_commit,
after_commit.  Unset (always, outside tests), each check is one dict lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}
_target: tuple[str, int] | None | bool = False  # False = not read yet


def _parse() -> tuple[str, int] | None:
    spec = os.environ.get("DBEMBED_CRASH_AT", "")
    if not spec:
        return None
    name, _, count = spec.partition(":")
    return name, int(count or "1")


def crash_point(name: str) -> None:
    global _target
    if _target is False:
        _target = _parse()
    if not _target:
        return
    target_name, target_count = _target  # type: ignore[misc]
    if name != target_name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= target_count:
        os.kill(os.getpid(), signal.SIGKILL)

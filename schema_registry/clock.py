"""The one timestamp format tenantdb writes: UTC to the second, ISO 8601 with a Z.

History rows, catalog rows, audit entries, rollout jobs and backups all use it, so they
sort and compare as text.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """Now, as `2026-11-21T09:31:05Z`."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

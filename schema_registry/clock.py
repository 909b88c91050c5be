"""The one timestamp format tenantdb writes: UTC to the second, ISO 8601 with a Z.

History rows, catalog rows, audit entries, rollout jobs and backups all use it, so they
sort and compare as text.
"""

from __future__ import annotations

import time

# The newest second and its text: a fleet rollout asks a few times per tenant, hundreds of
# tenants a second, and formatting costs ~3 µs. The pair is replaced whole, so a thread
# reads a second with its own text (never a torn pair).
_last: list[tuple[int, str]] = [(-1, "")]


def utc_now() -> str:
    """Now, as `2026-11-21T09:31:05Z`."""
    second = int(time.time())
    last = _last[0]
    if last[0] != second:
        last = _last[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return last[1]

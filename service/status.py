"""The one vocabulary of a tenant's status, and of what a rollout did to one.

The catalog stores what cannot be derived: `Stored`. Whether a synced tenant is current or
behind depends on the registry the service runs now, so it is computed when asked
(`status_of`): a stored "current" would go stale the moment the registry gains a version.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from schema_registry import SyncResult

# What the catalog keeps: created and not yet synced; synced (at its schema_version);
# pending (a sync that did not apply, in verify mode, found changes to make); drifted (the
# sync refused to change what differs); failed (its last sync raised).
Stored = Literal["provisioned", "synced", "pending", "drifted", "failed"]
# What a reader sees: `synced` split against the registry's current version.
TenantStatus = Literal["provisioned", "current", "out_of_date", "drifted", "failed"]
TENANT_STATUSES: Final[tuple[TenantStatus, ...]] = get_args(TenantStatus)

# What a rollout did to one tenant (a dry run says would_apply instead of upgraded).
RolloutOutcome = Literal["upgraded", "current", "would_apply", "failed", "drifted"]
ROLLOUT_OUTCOMES: Final[tuple[RolloutOutcome, ...]] = get_args(RolloutOutcome)


def status_of(stored: Stored, version: str | None, current: str) -> TenantStatus:
    """The status a reader sees of a tenant stored as `stored` at `version`."""
    if stored == "pending":
        return "out_of_date"
    if stored != "synced":
        return stored
    return "current" if version == current else "out_of_date"


def stored_after(result: SyncResult) -> Stored:
    """What the catalog keeps after a sync with this result (a dry run's included)."""
    if result.up_to_date:
        return "synced"
    return "drifted" if result.status == "drifted" else "pending"

"""The one vocabulary of a tenant's status, and of what a rollout did to one.

The catalog stores what cannot be derived: `Stored`. Whether a synced tenant is current or
behind depends on the registry the service runs now, so it is computed when asked
(`status_of`): a stored "current" would go stale the moment the registry gains a version.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from schema_registry import SyncResult, version_key

# What the catalog keeps: created and not yet synced; synced (at its schema_version);
# pending (a sync that did not apply, in verify mode, found changes to make); drifted (the
# sync refused to change what differs); failed (its last sync raised); damaged (its file is
# not a sound SQLite database: left as it is for an operator).
Stored = Literal["provisioned", "synced", "pending", "drifted", "failed", "damaged"]
# What a reader sees: `synced` split against the registry's current version.
# "ahead": synced at a version newer than this service's registry (a rollback).
TenantStatus = Literal[
    "provisioned", "current", "out_of_date", "ahead", "drifted", "failed", "damaged"
]
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
    if version == current:
        return "current"
    if newer(version, current):
        return "ahead"
    return "out_of_date"


def newer(version: str | None, than: str) -> bool:
    """Whether a recorded version is past `than` ("none": never synced, is not)."""
    return version not in (None, "none") and version_key(version) > version_key(than)


def stored_after(result: SyncResult) -> Stored:
    """What the catalog keeps after a sync with this result (a dry run's included)."""
    if result.up_to_date:
        return "synced"
    return "drifted" if result.status == "drifted" else "pending"

"""A drift item as the API, the CLI and the rollout store show it: one type for all three."""

from __future__ import annotations

import msgspec

from schema_registry import Refusal


class DriftItem(msgspec.Struct, frozen=True, kw_only=True):
    """A difference tenantdb will not fix by itself: it needs an operator or a migration."""

    kind: str  # the change's tag: add_column, replace_index, ...
    object: str
    description: str
    reason: str

    @classmethod
    def of(cls, refusal: Refusal) -> DriftItem:
        change = refusal.change
        return cls(
            kind=str(type(change).__struct_config__.tag),
            object=change.object,
            description=change.describe(),
            reason=refusal.reason,
        )

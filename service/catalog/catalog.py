"""The catalog of tenants: who has a database, where, and at which version.

A SQLite file in the data directory on the local backend, a dedicated namespace on sqld
(so every service replica sees it). Its stamps (version, content
hash, schema cookie) mirror each tenant's newest history row, so a returning user's
up-to-date check reads only the tenant file's header. Rows are cached in memory; the
cache may lag another process, which only sends a request down the slower, still correct
path (the tenant's own history row is the authority).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Final

import msgspec

from schema_registry import Database, Row, Stamp, Value, utc_now
from service.catalog.tables import open_tables
from service.rollouts.store import RolloutStore
from service.status import Stored, TenantStatus, status_of

_COLUMNS: Final = (
    "user_id, email, location, created_at, schema_version, content_hash, schema_cookie, "
    "last_sync_at, status, drift_count"
)


class TenantRecord(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    email: str | None
    location: str
    created_at: str
    schema_version: str | None = None
    content_hash: str | None = None
    schema_cookie: int | None = None
    last_sync_at: str | None = None
    status: Stored = "provisioned"
    drift_count: int = 0

    @property
    def stamp(self) -> Stamp | None:
        if self.schema_version is None or self.content_hash is None or self.schema_cookie is None:
            return None
        return Stamp(
            version=self.schema_version, content_hash=self.content_hash, cookie=self.schema_cookie
        )


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One change to a tenant: who asked (trigger, actor), from and to, and the SQL. The
    defaults are those of an entry with no SQL of its own (a restore, a recovered or
    reconciled tenant, a refused statement names its one)."""

    user_id: str
    trigger: str  # a SyncRequest's trigger, or restore, recovered, reconcile
    from_version: str | None
    to_version: str
    status: str
    actor: str | None = None
    at: str = msgspec.field(default_factory=utc_now)
    changes_applied: int = 0
    statements: tuple[str, ...] = ()
    id: int | None = None


_KEEP_LIST: Final = "INSERT OR IGNORE INTO statement_lists (digest, statements) VALUES (?, ?)"
CACHE_ROWS: Final = 100_000  # about 30 MB of rows per process at most

_AUDIT_COLUMNS: Final = (
    "id, at, user_id, trigger, actor, from_version, to_version, status, changes_applied, statements"
)


class TenantView(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's row as a reader sees it: its status against the registry served now."""

    user_id: str
    email: str | None
    location: str
    created_at: str
    schema_version: str | None
    content_hash: str | None
    schema_cookie: int | None
    last_sync_at: str | None
    status: TenantStatus
    drift_count: int

    @classmethod
    def of(cls, record: TenantRecord, current: str) -> TenantView:
        fields = msgspec.structs.asdict(record)
        fields["status"] = status_of(record.status, record.schema_version, current)
        return cls(**fields)


class Catalog:
    """Tenant rows in a database every service replica sees, with a read cache in front."""

    def __init__(self, store: Database) -> None:
        self.store = store
        self.rollouts = RolloutStore(store)  # fleet rollout jobs live in the same database
        # Rows read or written, oldest first out past CACHE_ROWS: a process's memory must not
        # grow with the fleet. First in, first out (a hit does not reorder): nothing to do
        # on a returning user's read, and an evicted row costs one read from the store.
        self._cache: dict[str, TenantRecord] = {}
        # Writes a fleet rollout defers to its next progress save (`flush`): the newest row
        # per tenant, and audit entries in order. Newer than the store, so reads see them.
        self._pending: dict[str, TenantRecord] = {}
        self._pending_audit: list[AuditEntry] = []
        self._flushing: dict[str, TenantRecord] = {}  # being written by `flush`

    async def open(self) -> None:
        """Bring the catalog's tables to their current version (`tables.open_tables`)."""
        await open_tables(self.store)

    def _keep(self, record: TenantRecord) -> None:
        cache = self._cache
        cache.pop(record.user_id, None)  # to the back of the line
        cache[record.user_id] = record
        if len(cache) > CACHE_ROWS:
            del cache[next(iter(cache))]

    def cached(self, user_id: str) -> TenantRecord | None:
        return self._cache.get(user_id)

    async def get(self, user_id: str, *, fresh: bool = False) -> TenantRecord | None:
        if not fresh and (hit := self._cache.get(user_id)) is not None:
            return hit
        if (pending := self._pending.get(user_id)) is not None:
            return pending  # the store has an older row until the next flush
        rows = await self.store.fetch(
            f"SELECT {_COLUMNS} FROM tenants WHERE user_id = ?", (user_id,)
        )
        record = _record(rows[0]) if rows else None
        if record is None:
            self._cache.pop(user_id, None)
        else:
            self._keep(record)
        return record

    async def put(
        self, record: TenantRecord, *, audit: AuditEntry | None = None, defer: bool = False
    ) -> None:
        """Insert or replace a tenant's row (the caller holds that tenant's lock), with the
        audit entry of the change that brought it there, in one batch.

        With `defer` the write waits for the next `flush` (a fleet rollout's progress save,
        which writes hundreds of rows in one transaction instead of one each). Deferred rows
        only mirror tenant databases: one lost in a crash is rewritten by the next sync.
        """
        if defer:
            self._keep(record)
            self._pending[record.user_id] = record
            if audit is not None:
                self._pending_audit.append(audit)
            return
        self._forget_pending(record.user_id)  # superseded: a flush must not write it back
        statements = [_tenant_insert(record)]
        if audit is not None:
            statements += _audit_insert(audit)
        try:
            await self.store.fetch_many(statements)
        except BaseException:
            # Not written: the cache must not claim it was, or the next sign-in would take
            # the fast path and never write the row (a tenant lost from the catalog).
            self._cache.pop(record.user_id, None)
            raise
        self._keep(record)

    async def flush(self) -> None:
        """Write the deferred rows in one batch; kept for the next flush if that fails."""
        if not self._pending and not self._pending_audit:
            return
        records, audits = self._pending, self._pending_audit
        self._pending, self._pending_audit, self._flushing = {}, [], records
        statements = [_tenant_insert(r) for r in records.values()]
        statements += [s for a in audits for s in _audit_insert(a)]
        try:
            await self.store.fetch_many(statements)
        except BaseException:
            self._pending = records | self._pending  # newer deferred rows win
            self._pending_audit = audits + self._pending_audit
            raise
        finally:
            self._flushing = {}

    def _forget_pending(self, user_id: str) -> None:
        self._pending.pop(user_id, None)
        self._flushing.pop(user_id, None)

    async def delete(self, user_id: str) -> None:
        self._forget_pending(user_id)
        await self.store.execute("DELETE FROM tenants WHERE user_id = ?", (user_id,))
        self._cache.pop(user_id, None)

    async def tenants(
        self,
        *,
        version: str | None = None,
        status: TenantStatus | None = None,
        versions: Sequence[str] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[TenantRecord]:
        """A page of tenants ordered by user id, filtered by version ("none": never synced)
        and by status; "current", "out_of_date" and "ahead" are judged against the
        registry's `versions` (oldest first).

        Each filter is one or a few equalities on an index whose entries follow user id
        (`_branches`), and each reads at most a page from it: what a page costs does not
        grow with the fleet, however few tenants match (the contract: every admin listing
        uses an index at any fleet size)."""
        pages: list[tuple[str, list[Value]]] = []
        for clauses, values in await self._branches(version, status, versions):
            where = " AND ".join(["user_id > ?", *clauses])
            pages.append(
                (
                    f"SELECT {_COLUMNS} FROM tenants WHERE {where} ORDER BY user_id LIMIT ?",
                    [after or "", *values, limit],
                )
            )
        if not pages:
            return []
        sql, params = pages[0]
        if len(pages) > 1:  # disjoint branches, each a page in order: the first `limit`
            sql = " UNION ALL ".join(f"SELECT * FROM ({s})" for s, _ in pages)
            sql += " ORDER BY user_id LIMIT ?"
            params = [*(p for _, values in pages for p in values), limit]
        rows = await self.store.fetch(sql, params)
        records = [_record(row) for row in rows]
        self.learn(records)  # a rollout reads them next
        return records

    async def _branches(
        self, version: str | None, status: TenantStatus | None, versions: Sequence[str] | None
    ) -> list[tuple[list[str], list[Value]]]:
        """The filter as disjoint branches (WHERE clauses, parameters) whose union it is:
        `status_of` in SQL, a synced tenant's status judged against `versions` (oldest first,
        the current one last), "ahead" and "out_of_date" at each version present (read from
        the index, `_synced_versions`) rather than at any version not in a list."""
        if status is None:
            branches: list[tuple[list[str], list[Value]]] = [([], [])]
        elif status not in ("current", "out_of_date", "ahead"):
            branches = [(["status = ?"], [status])]
        else:
            if not versions:
                raise ValueError(
                    f"status {status!r} is judged against the registry: pass its versions"
                )
            *older, current = versions
            synced = [current]
            if status == "out_of_date":
                synced = [v for v in await self._synced_versions() if v in older]
            elif status == "ahead":  # at a version this registry lacks (a newer release's)
                synced = [v for v in await self._synced_versions() if v not in versions]
            if version is not None:
                synced = [v for v in synced if v == version]
            branches = [(["status = 'synced'", "schema_version = ?"], [v]) for v in synced]
            if status == "out_of_date":  # a sync in verify mode found changes to make
                branches.append((["status = 'pending'"], []))
        if version is None:
            return branches
        clause, value = (
            ("schema_version IS NULL", [])
            if version == "none"
            else ("schema_version = ?", [version])
        )
        return [([*clauses, clause], [*values, *value]) for clauses, values in branches]

    async def _synced_versions(self) -> list[str]:
        """The versions synced tenants are at, one index seek each (a loose index scan)."""
        rows = await self.store.fetch(
            "WITH RECURSIVE present(version) AS ("
            "SELECT min(schema_version) FROM tenants WHERE status = 'synced' "
            "UNION ALL SELECT (SELECT min(schema_version) FROM tenants "
            "WHERE status = 'synced' AND schema_version > present.version) "
            "FROM present WHERE present.version IS NOT NULL"
            ") SELECT version FROM present WHERE version IS NOT NULL"
        )
        return [str(row[0]) for row in rows]

    def learn(self, records: list[TenantRecord]) -> None:
        """Cache rows just read from the store (here, or by the process that sent them)."""
        for record in records:
            self._keep(record)

    def refresh(self, records: list[TenantRecord]) -> None:
        """Cache the rows another process just wrote (a rollout's worker) for the tenants
        cached here; one that is not (deleted meanwhile, say) is left to the store."""
        for record in records:
            if record.user_id in self._cache:
                self._keep(record)

    async def record_audit(self, entry: AuditEntry) -> None:
        await self.store.fetch_many(_audit_insert(entry))

    async def audit(
        self, *, user_id: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Audit entries, newest first; page with `before` (an entry id)."""
        where = ["a.id < ?"]
        params: list[Value] = [before if before is not None else 2**62]
        if user_id is not None:
            where.append("a.user_id = ?")
            params.append(user_id)
        columns = ", ".join(f"a.{c}" for c in _AUDIT_COLUMNS.split(", ")[:-1])
        rows = await self.store.fetch(
            f"SELECT {columns}, coalesce(l.statements, a.statements) FROM audit_log AS a "
            "LEFT JOIN statement_lists AS l ON l.digest = a.statements_digest "
            f"WHERE {' AND '.join(where)} ORDER BY a.id DESC LIMIT ?",
            (*params, limit),
        )
        return [
            AuditEntry(
                id=int(r[0]),  # type: ignore[arg-type]
                at=str(r[1]),
                user_id=str(r[2]),
                trigger=str(r[3]),
                actor=None if r[4] is None else str(r[4]),
                from_version=None if r[5] is None else str(r[5]),
                to_version=str(r[6]),
                status=str(r[7]),
                changes_applied=int(r[8]),  # type: ignore[arg-type]
                statements=tuple(msgspec.json.decode(str(r[9]), type=list[str])),
            )
            for r in rows
        ]

    async def count(self, status: Stored) -> int:
        """Tenants stored with this status (catalog 1.5.0's counts): damaged ones for health
        checks."""
        rows = await self.store.fetch(
            "SELECT coalesce(sum(tenants), 0) FROM tenant_counts WHERE status = ?", (status,)
        )
        return int(rows[0][0])  # type: ignore[arg-type]

    async def summary(self) -> tuple[int, dict[str, int], int]:
        """(tenant count, tenants by version, drifted tenants) for health and metrics, from
        the counts the catalog's triggers keep (a few rows, at any fleet size)."""
        by_version: dict[str, int] = {}
        drifted = 0
        for version, status, count in await self.store.fetch(
            "SELECT schema_version, status, tenants FROM tenant_counts WHERE tenants > 0 "
            "ORDER BY schema_version"
        ):
            tenants = int(count)  # type: ignore[arg-type]
            by_version[str(version)] = by_version.get(str(version), 0) + tenants
            drifted += tenants if status == "drifted" else 0
        return sum(by_version.values()), by_version, drifted


def _tenant_insert(record: TenantRecord) -> tuple[str, Sequence[Value]]:
    return (
        f"INSERT OR REPLACE INTO tenants ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
        tuple(msgspec.structs.astuple(record)),
    )


@functools.lru_cache(maxsize=64)
def _statement_list(statements: tuple[str, ...]) -> tuple[str, str]:
    """A statement list as stored (JSON) and its digest: made once per distinct list, as a
    fleet's rollout runs the same plan for thousands of tenants."""
    text = msgspec.json.encode(statements).decode()
    return text, hashlib.sha256(text.encode()).hexdigest()[:32]


def _audit_insert(entry: AuditEntry) -> list[tuple[str, Sequence[Value]]]:
    """The entry, its statement list stored once by digest (the same plan ran for many)."""
    statements, digest = _statement_list(entry.statements)
    return [
        (
            "INSERT OR IGNORE INTO statement_lists (digest, statements) VALUES (?, ?)",
            (digest, statements),
        ),
        (
            f"INSERT INTO audit_log ({_AUDIT_COLUMNS}, statements_digest) "
            "VALUES (NULL,?,?,?,?,?,?,?,?,'',?)",
            (
                entry.at,
                entry.user_id,
                entry.trigger,
                entry.actor,
                entry.from_version,
                entry.to_version,
                entry.status,
                entry.changes_applied,
                digest,
            ),
        ),
    ]


def _record(row: Row) -> TenantRecord:
    return msgspec.convert(
        dict(zip(TenantRecord.__struct_fields__, row, strict=True)), TenantRecord
    )

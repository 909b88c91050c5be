"""Tenant databases as namespaces on sqld (the libSQL server), one namespace per user.

Several sqld primaries may be listed: a new tenant is placed on one by rendezvous hashing
of its user id over the shard numbers, and the choice is recorded in the catalog
(location `"{shard}/{namespace}"`), so adding a server moves nobody.

sqld may answer 404 for a namespace that exists when more than --max-active-namespaces
are loaded (tursodatabase/libsql#1772). A 404 is therefore retried, then checked against
the admin API, and never taken alone as "no database": nobody is re-provisioned over a
live database.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final, Literal, TypeVar

import jwt
import msgspec
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schema_registry import (
    HistoryRow,
    Registry,
    Stamp,
    SyncContext,
    SyncResult,
    check,
    read_history,
    sync,
)
from service.backends.base import BackendUnavailable, DatabaseBusy, DatabaseMissing
from service.backends.sqld.hrana import HranaDatabase, HranaError, HranaHttp, NamespaceMissing
from service.backends.sqld.http1 import Http1Pool, HttpError
from service.backends.sqld.restore import restore_namespace
from service.backends.sqld.streams import StreamCache
from service.backends.transient import BUDGET_SECONDS, RETRIES, TransientKind, delays
from service.config import ConfigError, Settings

T = TypeVar("T")
log = structlog.get_logger("tenantdb.sqld")

# sqld admits a namespace into its full cache only once it is asked for often enough
# (TinyLFU), so a few quick retries usually get past a false 404.
RETRY_DELAYS: Final = (0.02, 0.05, 0.1, 0.2, 0.4)
CONFIRMED_MAX: Final = 100_000  # remembered confirmations (about 200 bytes each)
_SLUG: Final = re.compile(r"[^a-z0-9]+")


def namespace_for(user_id: str) -> str:
    """The namespace of a user: a readable slug and 96 bits of SHA-256 of the exact id.

    Lower-case letters, digits and '-' only, at most 45 characters, so it is a valid DNS
    label for `{namespace}.db.example.com` URLs; the hash keeps ids that differ only in
    case or punctuation apart ("Alice" and "alice", "a_b" and "a-b").
    """
    slug = _SLUG.sub("-", user_id.lower()).strip("-")[:20] or "u"
    return f"{slug}-{hashlib.sha256(user_id.encode()).hexdigest()[:24]}"


def place(user_id: str, shards: int) -> int:
    """Rendezvous hashing: the shard with the highest hash of (shard, user) wins."""
    return max(range(shards), key=lambda i: hashlib.sha256(f"{i}:{user_id}".encode()).digest())


class SqldBackend:
    kind: Final[Literal["sqld"]] = "sqld"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Parsed once: PyJWT would parse a PEM string again on every token.
        key = serialization.load_pem_private_key(
            Path(settings.sqld_jwt_key_file or "").read_bytes(), password=None
        )
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("TENANTDB_SQLD_JWT_KEY_FILE: sqld needs an Ed25519 private key")
        self._key = key
        self._service_token = ("", 0.0)
        self._http = [HranaHttp(url, self._token) for url in settings.sqld_url]
        # Returning users' checks reuse streams held open per server (streams.py).
        self.streams = [StreamCache(settings.sqld_held_streams) for _ in settings.sqld_url]
        self._admin = [Http1Pool(url, limit=16) for url in settings.sqld_admin_url]
        # Each shard's sqld --db-path, when this process can read it: how namespaces are
        # listed where the admin API cannot list them (`databases`).
        self.db_paths: tuple[Path, ...] = ()
        # location -> (stamp, monotonic deadline): checks confirmed current, reused for
        # sqld_check_ttl seconds. Bounded; oldest first out.
        self._confirmed: OrderedDict[str, tuple[Stamp, float]] = OrderedDict()

    # Naming and credentials ------------------------------------------------------------

    def location(self, user_id: str) -> str:
        return f"{place(user_id, len(self._http))}/{namespace_for(user_id)}"

    @staticmethod
    def split(location: str) -> tuple[int, str]:
        shard, _, namespace = location.partition("/")
        return int(shard), namespace

    def database_url(self, location: str) -> str:
        shard, namespace = self.split(location)
        template = self._settings.public_url_template or ""
        return template.format(namespace=namespace, shard=shard)

    def database_token(self, user_id: str, location: str) -> str | None:
        """An EdDSA token for this namespace only (sqld's `p` claim), valid token_ttl seconds."""
        _, namespace = self.split(location)
        now = int(time.time())
        claims = {
            "sub": user_id,
            "iat": now,
            "exp": now + self._settings.token_ttl,
            "p": {"rw": {"ns": [namespace]}},
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA")

    def _token(self) -> str:
        """The service's own full-access token, re-minted five minutes before it expires."""
        token, expires = self._service_token
        now = time.time()
        if now > expires - 300:
            expires = now + 3600
            token = jwt.encode(
                {"sub": "tenantdb", "iat": int(now), "exp": int(expires)},
                self._key,
                algorithm="EdDSA",
            )
            self._service_token = (token, expires)
        return token

    def database(self, location: str, *, held: bool = False) -> HranaDatabase:
        """The namespace as a Database; `held`: statements outside transactions reuse a
        stream held open for it (for checks: reads that recur)."""
        shard, namespace = self.split(location)
        return HranaDatabase(self._http[shard], namespace, self.streams[shard] if held else None)

    def catalog_store(self) -> HranaDatabase:
        return HranaDatabase(self._http[0], self._settings.sqld_catalog_namespace)

    # The admin API ---------------------------------------------------------------------

    async def _admin_request(
        self, shard: int, method: str, path: str, body: bytes = b""
    ) -> tuple[int, str]:
        pool = self._admin[shard]
        try:
            status, reply = await pool.request(
                method, path, body, {"content-type": "application/json"}
            )
        except (HttpError, TimeoutError) as exc:
            raise BackendUnavailable(f"sqld's admin API at {pool.base_url} did not answer") from exc
        return status, reply.decode("utf-8", "replace")

    async def create_namespace(self, shard: int, namespace: str) -> bool:
        """Create it; False when it existed already (creation is idempotent)."""
        path = f"/v1/namespaces/{namespace}/create"
        status, text = await self._admin_request(shard, "POST", path, b"{}")
        if status == 200:
            return True
        if status == 400 and "already exists" in text:
            return False
        raise BackendUnavailable(
            f"sqld admin API refused to create {namespace}: {status} {text[:200]}"
        )

    async def namespace_exists(self, shard: int, namespace: str) -> bool:
        status, _ = await self._admin_request(shard, "GET", f"/v1/namespaces/{namespace}/config")
        if status in (200, 404):
            return status == 200
        raise BackendUnavailable(f"sqld admin API answered {status} for {namespace}")

    async def _call(
        self,
        location: str,
        work: Callable[[HranaDatabase], Awaitable[T]],
        *,
        held: bool = False,
    ) -> T:
        """Run `work`, again while sqld answers with a transient fault (transient.py), within
        the budget: a 404 (a few quick tries, then the admin API says whether the namespace
        exists; if it does, sqld is loading it), SQLite busy, a failed checkpoint. Each is
        an answer that changed nothing (a sync's transaction rolled back), so a whole sync
        or check may run again. What still fails is typed: missing, busy, unavailable."""
        db = self.database(location, held=held)
        quick, waits = iter(RETRY_DELAYS), delays()
        confirmed = False
        while True:
            kind: TransientKind
            try:
                return await work(db)
            except NamespaceMissing:
                kind, wait = "loading", next(quick, None)
                if wait is None:
                    if not confirmed:
                        await self._confirm_exists(location)
                        confirmed = True
                    wait = next(waits, None)
                if wait is None:
                    raise BackendUnavailable(
                        "sqld is still loading this database; try again in a moment"
                    ) from None
            except HranaError as exc:
                found = exc.transient
                if found is None:
                    typed = _typed(exc)
                    if typed is None:
                        raise
                    raise typed from exc
                kind, wait = found, next(waits, None)
                if wait is None:
                    raise DatabaseBusy(
                        f"another writer held this database for {BUDGET_SECONDS:g} s ({exc}); "
                        "try again in a moment"
                    ) from exc
            RETRIES.add(kind)
            await asyncio.sleep(wait)

    async def _confirm_exists(self, location: str) -> None:
        """After persistent 404s: DatabaseMissing unless the admin API knows the namespace."""
        shard, namespace = self.split(location)
        if not await self.namespace_exists(shard, namespace):
            raise DatabaseMissing("no database for this user: call POST /api/user/initialize first")
        log.warning("sqld.false_namespace_404", namespace=namespace, shard=shard)

    # The Backend interface -------------------------------------------------------------

    async def check(self, location: str, registry: Registry, known: Stamp | None) -> Stamp | None:
        """The returning user's fast path: one request reading the live schema cookie.

        sqld opens a connection for every new Hrana stream (about 1 ms of its CPU), so with
        TENANTDB_SQLD_CHECK_TTL > 0 a check confirmed within that many seconds, for the
        same stamp, is reused: bursts of sign-ins cost one request, and a schema changed
        behind the service's back is noticed that much later. Syncs and deletes forget it.
        """
        ttl = self._settings.sqld_check_ttl
        target = registry.current
        if (
            ttl
            and known is not None
            and known.version == target.version
            and target.accepts(known.content_hash)
            and self._still_confirmed(location, known)
        ):
            return known

        async def work(db: HranaDatabase) -> Stamp | None:
            current, head, _ = await check(db, target, known)
            if not current:
                return None
            return known if head is None else head.stamp

        try:
            stamp = await self._call(location, work, held=True)
        except DatabaseMissing:
            stamp = None
        if ttl and stamp is not None:
            self._confirmed[location] = (stamp, time.monotonic() + ttl)
            self._confirmed.move_to_end(location)
            if len(self._confirmed) > CONFIRMED_MAX:
                self._confirmed.popitem(last=False)
        return stamp

    def _still_confirmed(self, location: str, known: Stamp) -> bool:
        hit = self._confirmed.get(location)
        return hit is not None and hit[0] == known and hit[1] > time.monotonic()

    async def sync(
        self,
        location: str,
        registry: Registry,
        *,
        apply: bool,
        known: Stamp | None,
        context: SyncContext,
        create: bool = False,
        target: str | None = None,
    ) -> tuple[SyncResult, bool]:
        self._confirmed.pop(location, None)
        shard, namespace = self.split(location)
        created = await self.create_namespace(shard, namespace) if create else False

        async def work(db: HranaDatabase) -> SyncResult:
            return await sync(
                db,
                registry,
                target=target,
                apply=apply or created,
                known=known,
                context=context,
                fresh=created,
            )

        return await self._call(location, work), created

    async def history(self, location: str) -> list[HistoryRow] | None:
        try:
            return await self._call(location, read_history)
        except DatabaseMissing:
            return None

    async def delete(self, location: str) -> bool:
        self._confirmed.pop(location, None)
        shard, namespace = self.split(location)
        self.streams[shard].forget(namespace)
        status, _ = await self._admin_request(shard, "DELETE", f"/v1/namespaces/{namespace}")
        if status in (200, 404):
            return status == 200
        raise BackendUnavailable(f"sqld admin API refused to delete {namespace}: {status}")

    async def export(self, location: str, dest: Path) -> None:
        """sqld's /dump (SQL text from one read transaction), loaded into a new SQLite file."""
        shard, namespace = self.split(location)
        status, dump = await self._http[shard].request("GET", "/dump", namespace)
        if status == 404:
            raise DatabaseMissing("no database for this user")
        if status != 200:
            raise BackendUnavailable(f"sqld refused the export: {status}")
        await asyncio.to_thread(_load_dump, dump.decode("utf-8"), dest)

    async def exists(self, location: str) -> bool:
        """Asked of the admin API: sqld's Hrana endpoint may answer a false 404."""
        return await self.namespace_exists(*self.split(location))

    async def restore(self, location: str, source: Path) -> None:
        shard, namespace = self.split(location)
        await self.create_namespace(shard, namespace)  # made again when it was lost
        await restore_namespace(self.database(location), source)

    async def databases(self) -> AsyncIterator[str]:
        """Every namespace on every shard but the catalog's name (the catalog, and the
        anchors of the other shards), as `"{shard}/{namespace}"`."""
        catalog = self._settings.sqld_catalog_namespace
        for shard in range(len(self._admin)):
            for namespace in await self._namespaces(shard):
                if namespace != catalog:
                    yield f"{shard}/{namespace}"

    async def _namespaces(self, shard: int) -> list[str]:
        """The admin API's list when it has one. sqld 0.24's answers `GET /v1/namespaces`
        with an empty 200 (grpc-status 12, unimplemented): then the folders of its
        `--db-path`/dbs (`db_paths`, one per shard), each confirmed by the admin API."""
        status, text = await self._admin_request(shard, "GET", "/v1/namespaces")
        listed = _namespace_list(text) if status == 200 else None
        if listed is not None:
            return sorted(listed)
        if shard >= len(self.db_paths):
            raise BackendUnavailable(
                f"sqld at {self._admin[shard].base_url} cannot list its namespaces over the "
                "admin API (GET /v1/namespaces is unimplemented in sqld 0.24): give the "
                "folder of its --db-path (one per shard, in TENANTDB_SQLD_URL order)"
            )
        folder = self.db_paths[shard] / "dbs"
        if not folder.is_dir():
            raise BackendUnavailable(f"{folder} is not a folder: is it sqld's --db-path?")
        names = sorted(await asyncio.to_thread(lambda: [e.name for e in folder.iterdir()]))
        gate = asyncio.Semaphore(16)  # the admin pool's connections

        async def confirmed(name: str) -> bool:
            async with gate:
                return await self.namespace_exists(shard, name)

        found = await asyncio.gather(*(confirmed(n) for n in names))
        return [name for name, ok in zip(names, found, strict=True) if ok]

    def owner(self, location: str) -> str | None:
        """The slug before the hash, when it is the whole user id (namespace_for gives this
        namespace back): ids the slug shortened or changed are unknown owners."""
        _, namespace = self.split(location)
        candidate = namespace.rpartition("-")[0]
        if not candidate or namespace_for(candidate) != namespace:
            return None
        return candidate

    async def ping(self) -> bool:
        for shard in range(len(self._admin)):
            try:
                status, _ = await self._admin_request(shard, "GET", "/v1/namespaces")
            except BackendUnavailable:
                return False
            if status != 200:
                return False
        return True

    async def prepare(self) -> None:
        """Make sure the catalog namespace exists (on the first shard), and on every shard
        the anchor that continues transactions (hrana.py, `HranaHttp.exchange`): the
        catalog there, an empty namespace of its name on the others. A shard out of reach
        starts without one (its transactions name their own namespaces) rather than stop
        the service."""
        name = self._settings.sqld_catalog_namespace
        await self.create_namespace(0, name)
        self._http[0].anchor = name
        for shard in range(1, len(self._http)):
            try:
                await self.create_namespace(shard, name)
            except BackendUnavailable as exc:
                log.warning("sqld.no_anchor", shard=shard, error=exc.message)
                continue
            self._http[shard].anchor = name

    async def close(self) -> None:
        for http in self._http:
            await http.close()
        for admin in self._admin:
            await admin.close()


def _typed(exc: HranaError) -> BackendUnavailable | None:
    """sqld out of open files is a fault of its sizing, not of the tenant: said so. (It
    answers `unable to open database file` when the limit is met opening a namespace.)"""
    text = str(exc)
    if "Too many open files" in text or "unable to open database file" in text:
        return BackendUnavailable(
            f"sqld could not open a file ({text[:160]}): it may have run out of open files "
            "(5 per loaded namespace, 7 per connection): lower its --max-active-namespaces "
            "or raise its file limit (deploy/README.md, Sizing)"
        )
    return None


def _load_dump(dump: str, dest: Path) -> None:
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        conn.executescript(dump)
    finally:
        conn.close()


def _namespace_list(text: str) -> list[str] | None:
    """Names from an admin API list (names, or objects with a `name`), None if not one."""
    try:
        body = msgspec.json.decode(text) if text.strip() else None
    except msgspec.DecodeError:
        return None
    if isinstance(body, dict):
        body = body.get("namespaces")
    if not isinstance(body, list):
        return None
    names = [item.get("name") if isinstance(item, dict) else item for item in body]
    return [n for n in names if isinstance(n, str)]

"""A Hrana-over-HTTP client for sqld: the Database interface for one namespace.

Chosen over libsql-client's WebSocket client because one keep-alive HTTP pool serves every
namespace (the namespace travels in the `x-namespace-bin` header), where a WebSocket would
need a handshake per namespace; a transaction is a Hrana stream held open by its baton.
The HTTP is service/backends/http1.py's.
Protocol: https://github.com/tursodatabase/libsql/blob/main/docs/HRANA_3_SPEC.md

A transaction's later requests name the server's anchor namespace, not the stream's own
(see `HranaHttp.exchange`): past --max-active-namespaces sqld may unload a namespace while
the transaction holds its write lock, and a request naming it would load it again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import msgspec
import structlog

from schema_registry import Row, Value
from service.backends.base import BackendUnavailable
from service.backends.sqld.http1 import Http1Pool, HttpError
from service.backends.sqld.streams import Held, StreamCache
from service.backends.transient import RETRIES, TransientKind, delays, kind_of

log = structlog.get_logger("tenantdb.sqld")
ANCHOR_WARN_EVERY: Final = 60.0  # seconds between warnings that the anchor is gone


class HranaError(Exception):
    """sqld refused a statement or a request."""

    def __init__(
        self, message: str, code: str | None = None, status: int | None = None, step: int = 0
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.step = step  # which statement of a batch failed (the ones before it ran)

    @property
    def busy(self) -> bool:
        return "database is locked" in str(self) or self.code == "SQLITE_BUSY"

    @property
    def transient(self) -> TransientKind | None:
        """Busy, or sqld's failed checkpoint (SQLite busy while it loads or unloads the
        namespace): sqld answered, the request changed nothing, a retry may work."""
        return kind_of(str(self), self.code)


class NamespaceMissing(HranaError):
    """sqld answered 404 for the namespace. Not proof it is gone: see SqldBackend._confirm."""


BUSY_DELAYS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
_FK_OFF: tuple[str, Sequence[Value]] = ("PRAGMA foreign_keys = OFF", ())
_FK_ON: tuple[str, Sequence[Value]] = ("PRAGMA foreign_keys = ON", ())  # sqld's default


def namespace_header(namespace: str) -> str:
    """sqld reads the namespace from `x-namespace-bin`: unpadded base64 of the name."""
    return base64.b64encode(namespace.encode()).decode().rstrip("=")


def _to_value(value: Value) -> dict[str, Any]:
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool | int):
        return {"type": "integer", "value": str(int(value))}
    if isinstance(value, float):
        return {"type": "float", "value": value}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    return {"type": "blob", "base64": base64.b64encode(value).decode().rstrip("=")}


def _from_value(cell: dict[str, Any]) -> Value:
    kind = cell["type"]
    if kind == "null":
        return None
    if kind == "integer":
        return int(cell["value"])
    if kind == "float":
        return float(cell["value"])
    if kind == "text":
        return str(cell["value"])
    data = str(cell["base64"])
    return base64.b64decode(data + "=" * (-len(data) % 4))


def _stmt(sql: str, params: Sequence[Value]) -> dict[str, Any]:
    return {"sql": sql, "args": [_to_value(p) for p in params], "want_rows": True}


def _statement(sql: str, params: Sequence[Value]) -> dict[str, Any]:
    return {"type": "execute", "stmt": _stmt(sql, params)}


def _batch(
    statements: Sequence[tuple[str, Sequence[Value]]], *, rollback_on_error: bool = False
) -> dict[str, Any]:
    """One Hrana batch: each step runs only if the one before succeeded.

    sqld runs a batch as one request, about twice as fast as the same statements as
    separate pipeline requests. (Not `sequence`: sqld 0.24 skipped a statement that did
    not parse and carried on.) With `rollback_on_error`, a last step rolls the open
    transaction back when the statements did not all succeed.
    """
    steps: list[dict[str, Any]] = []
    for index, (sql, params) in enumerate(statements):
        step: dict[str, Any] = {"stmt": _stmt(sql, params)}
        if index:
            step["condition"] = {"type": "ok", "step": index - 1}
        steps.append(step)
    if rollback_on_error and steps:
        last = {"type": "ok", "step": len(steps) - 1}
        steps.append({"stmt": _stmt("ROLLBACK", ()), "condition": {"type": "not", "cond": last}})
    return {"type": "batch", "batch": {"steps": steps}}


def _batch_rows(response: dict[str, Any], count: int) -> list[list[Row]]:
    """The rows of a batch's first `count` steps, raising the first step's error."""
    result = response["result"]
    for index, error in enumerate(result["step_errors"][:count]):
        if error is not None:
            raise HranaError(str(error.get("message")), error.get("code"), step=index)
    steps = result["step_results"][:count]
    if len(steps) != count or any(step is None for step in steps):
        raise HranaError("sqld skipped statements of a batch without saying why")
    return [[tuple(_from_value(c) for c in row) for row in step["rows"]] for step in steps]


class HranaHttp:
    """The HTTP side: keep-alive connections to one sqld, shared by every namespace."""

    def __init__(self, base_url: str, token: Callable[[], str]) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        # By URL: sqld may answer a stream's request with another URL to send the rest to.
        self._pools: dict[str, Http1Pool] = {self.base_url: Http1Pool(self.base_url)}
        # A namespace this server keeps loaded, named by the requests that continue a
        # transaction (`exchange`); set by SqldBackend.prepare once it exists there.
        self.anchor: str | None = None
        self._anchor_warned = 0.0

    @property
    def connections_opened(self) -> int:
        return sum(pool.opened for pool in self._pools.values())

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()

    async def request(
        self,
        method: str,
        path: str,
        namespace: str,
        body: bytes = b"",
        base_url: str | None = None,
    ) -> tuple[int, bytes]:
        """One request for a namespace with the service's token; sqld out of reach is
        BackendUnavailable."""
        url = (base_url or self.base_url).rstrip("/")
        pool = self._pools.get(url)
        if pool is None:
            pool = self._pools[url] = Http1Pool(url)
        headers = {
            "authorization": f"Bearer {self._token()}",
            "x-namespace-bin": namespace_header(namespace),
            "content-type": "application/json",
        }
        try:
            return await pool.request(method, path, body, headers)
        except (HttpError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"sqld at {url} did not answer ({exc or 'timed out'})"
            ) from exc

    async def pipeline(
        self,
        namespace: str,
        requests: list[dict[str, Any]],
        baton: str | None = None,
        base_url: str | None = None,
        *,
        anchored: bool = False,
    ) -> tuple[str | None, str | None, list[Any]]:
        """Send requests on a stream; returns (baton, base_url, results), raising on errors."""
        baton, base_url, results = await self.exchange(
            namespace, requests, baton, base_url, anchored=anchored
        )
        return baton, base_url, [_response(result) for result in results]

    async def exchange(
        self,
        namespace: str,
        requests: list[dict[str, Any]],
        baton: str | None = None,
        base_url: str | None = None,
        *,
        anchored: bool = False,
    ) -> tuple[str | None, str | None, list[Any]]:
        """`pipeline`, returning each request's result as sqld sent it, errors included;
        raises only when the whole request was refused (HranaError with its status).
        `anchored`: the stream holds a transaction, continued through the anchor."""
        body = msgspec.json.encode({"baton": baton, "requests": requests})
        # sqld finds a stream by its baton alone, but loads the namespace a request names
        # before it looks (its extractor, on every request). Past --max-active-namespaces
        # it may have unloaded the stream's namespace since the last request; loading it
        # again while this stream's transaction holds the write lock waits 5 s on that
        # lock (the load checkpoints a namespace whose unload has not finished) on one of
        # sqld's worker threads: every request to that server stalls, and this one fails
        # with "Checkpoint failed". So a transaction's later requests name the anchor,
        # which stays loaded, and its namespace is loaded once per transaction (contract
        # "sqld at 10,000 namespaces": each namespace loaded once per rollout). Streams
        # without a transaction keep naming their own namespace: one deleted meanwhile
        # answers 404 there, where its stream would still read the deleted file.
        via = self.anchor if anchored and baton is not None and self.anchor else namespace
        status, reply = await self.request("POST", "/v2/pipeline", via, body, base_url)
        if status == 404 and via != namespace:
            # Refused before the stream was touched (its baton still holds): the anchor
            # was deleted, or sqld answered a false 404 for it. The stream's own
            # namespace carries the request instead.
            self._anchor_missing()
            status, reply = await self.request("POST", "/v2/pipeline", namespace, body, base_url)
        if status != 200:
            text = reply.decode("utf-8", "replace")
            if status == 404 and "doesn't exist" in text:
                raise NamespaceMissing(text, status=404)
            raise HranaError(f"sqld answered {status}: {text[:200]}", status=status)
        payload = msgspec.json.decode(reply)
        return payload.get("baton"), payload.get("base_url"), payload["results"]

    def _anchor_missing(self) -> None:
        now = time.monotonic()
        if now - self._anchor_warned >= ANCHOR_WARN_EVERY:
            self._anchor_warned = now
            log.warning(
                "sqld.anchor_missing",
                server=self.base_url,
                anchor=self.anchor,
                hint="restart tenantdb to create it again; until then a transaction's "
                "requests may make sqld load its namespace again",
            )


def _response(result: dict[str, Any]) -> Any:
    """One request's response, or its error raised."""
    if result["type"] == "error":
        error = result["error"]
        raise HranaError(str(error.get("message")), error.get("code"))
    return result["response"]


def _rows(response: dict[str, Any]) -> list[Row]:
    return [tuple(_from_value(c) for c in row) for row in response["result"]["rows"]]


class HranaTransaction:
    """A write transaction on one Hrana stream; rolls back unless committed.

    Every call is one batch in one request. BEGIN (and the foreign-keys PRAGMA before it)
    lead the first batch as its first steps, so nothing runs outside the transaction if
    BEGIN is refused; a BEGIN refused because another stream writes is tried again.
    """

    def __init__(self, http: HranaHttp, namespace: str, *, foreign_keys: bool = True) -> None:
        self._http = http
        self._namespace = namespace
        self._baton: str | None = None
        self._base_url: str | None = None
        self._lead: list[tuple[str, Sequence[Value]]] = [] if foreign_keys else [_FK_OFF]
        self._lead.append(("BEGIN IMMEDIATE", ()))
        # Runs after the transaction on its stream, whether it committed or not.
        self._after = [] if foreign_keys else [_statement(*_FK_ON)]
        self.committed = False

    async def _run(
        self,
        statements: Sequence[tuple[str, Sequence[Value]]],
        *,
        close: bool = False,
        rollback_on_error: bool = False,
    ) -> list[list[Row]]:
        lead, self._lead = self._lead, []
        steps = [*lead, *statements]
        requests = [_batch(steps, rollback_on_error=rollback_on_error)]
        if close:
            requests += [*self._after, {"type": "close"}]
        for delay in (*BUSY_DELAYS, None):
            self._baton, base_url, results = await self._http.pipeline(
                self._namespace, requests, self._baton, self._base_url, anchored=True
            )
            self._base_url = base_url or self._base_url
            try:
                return _batch_rows(results[0], len(steps))[len(lead) :]
            except HranaError as exc:
                refused = exc.busy and exc.step < len(lead)  # BEGIN refused: nothing ran
                if delay is None or not refused:
                    # Count the failing step among the caller's statements, as a local
                    # connection would (the lead is ours: BEGIN and its pragmas).
                    exc.step = max(exc.step - len(lead), 0)
                    raise
                RETRIES.add("busy")
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def fetch(self, sql: str, params: Sequence[Value] = ()) -> list[Row]:
        return (await self._run([(sql, params)]))[0]

    async def execute(self, sql: str, params: Sequence[Value] = ()) -> None:
        await self._run([(sql, params)])

    async def fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        if not statements:
            return []
        return await self._run(statements)

    async def commit(
        self, statements: Sequence[tuple[str, Sequence[Value]]] = ()
    ) -> list[list[Row]]:
        """The statements, COMMIT and closing the stream in one request; a failing
        statement rolls back in the same batch."""
        if self._lead and not statements:  # nothing ran: nothing to commit
            self._lead = []
            self.committed = True
            return []
        # sqld's reply (the stream closed: no baton) clears the baton; a request that may not
        # have reached sqld keeps it, so `abandon` still rolls back and closes the stream.
        rows = await self._run([*statements, ("COMMIT", ())], close=True, rollback_on_error=True)
        self.committed = True
        return rows[:-1]

    async def abandon(self) -> None:
        self._lead = []
        if self._baton is not None:
            # If this fails the stream times out on sqld's side and rolls back there.
            with contextlib.suppress(HranaError, BackendUnavailable):
                await self._http.pipeline(
                    self._namespace,
                    [_statement("ROLLBACK", ()), *self._after, {"type": "close"}],
                    self._baton,
                    self._base_url,
                    anchored=True,
                )
            self._baton = None


class HranaDatabase:
    """One namespace behind the engine's Database interface.

    With `streams`, statements outside transactions run on a stream the cache holds open
    for this namespace (see service/backends/streams.py); without, each on a new stream.
    """

    def __init__(self, http: HranaHttp, namespace: str, streams: StreamCache | None = None) -> None:
        self.http = http
        self.namespace = namespace
        self.streams = streams

    async def fetch(self, sql: str, params: Sequence[Value] = ()) -> list[Row]:
        return (await self.fetch_many([(sql, params)]))[0]

    async def execute(self, sql: str, params: Sequence[Value] = ()) -> None:
        await self.fetch_many([(sql, params)])

    async def fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        """Run statements (each its own autocommit), waiting out another writer's lock.

        sqld answers "database is locked" when SQLite's lock is held outside its own queue
        (a checkpoint, another process); the batch is tried again, within the transient
        budget (the catalog's writes come here), only when its first statement was
        refused, so nothing runs twice.
        """
        waits = delays()
        while True:
            try:
                return await self._fetch_many(statements)
            except HranaError as exc:
                wait = next(waits, None) if exc.step == 0 else None
                kind = exc.transient
                if wait is None or kind is None:
                    raise
                RETRIES.add(kind)
                await asyncio.sleep(wait)

    async def _fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        if len(statements) == 1:
            return [_rows(await self._send(_statement(*statements[0])))]
        return _batch_rows(await self._send(_batch(statements)), len(statements))

    async def _send(self, request: dict[str, Any]) -> Any:
        """One request, on a held stream when there is one (or room to keep a new one)."""
        streams = self.streams
        if streams is not None:
            held = streams.take(self.namespace)
            if held is not None:
                try:
                    return await self._on_held(streams, request, held)
                except HranaError as exc:
                    if exc.status is None or isinstance(exc, NamespaceMissing):
                        raise
                    # sqld no longer knows the stream (it expired, or sqld restarted)
            if streams.reserve():
                return await self._on_held(streams, request, None)
        _, _, results = await self.http.pipeline(self.namespace, [request, {"type": "close"}])
        return results[0]

    async def _on_held(
        self, streams: StreamCache, request: dict[str, Any], held: Held | None
    ) -> Any:
        """On a stream the cache counts as open (taken, or reserved when `held` is None):
        it goes back to the cache unless it is gone."""
        try:
            baton, base_url, results = await self.http.exchange(
                self.namespace, [request], *(held or (None, None))
            )
        except HranaError as exc:  # sqld refused the request: no stream of ours is open
            streams.lose(closed=exc.status is not None)
            raise
        except BaseException:  # no answer: the stream may be open until sqld expires it
            streams.lose(closed=False)
            raise
        if baton is None:
            streams.lose(closed=True)
        else:
            streams.give(self.namespace, Held(baton, base_url))
        return _response(results[0])

    @asynccontextmanager
    async def transaction(self, *, foreign_keys: bool = True) -> AsyncIterator[HranaTransaction]:
        tx = HranaTransaction(self.http, self.namespace, foreign_keys=foreign_keys)
        try:
            yield tx
        finally:
            if not tx.committed:
                await tx.abandon()

    async def schema_cookie(self) -> int:
        rows = await self.fetch("PRAGMA schema_version")
        return int(rows[0][0])  # type: ignore[arg-type]

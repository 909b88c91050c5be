"""Prometheus metrics with prometheus-client, in a registry of the app's own.

Each app gets its own `CollectorRegistry` (never the process-wide default), so two apps
in one process, as in the tests, count apart. What is counted:

- full syncs by outcome and trigger, their durations, databases provisioned: fed as
  TenantService's observer (a SyncEvent after every full sync);
- HTTP requests by route template, method and status, with their latency, and sign-ins
  answered by the fast path (a returning user whose database is current: the commonest
  request of all, which no SyncEvent reports): fed by the request-log middleware;
- the tenant gauges, read from the catalog (which every process shares) at scrape time;
- the process (CPU, memory, open files), the Python platform and its garbage collector.

Several server processes (`tenantdb serve --workers N`) use prometheus-client's
multiprocess mode: `serve` makes a fresh PROMETHEUS_MULTIPROC_DIR before the workers start
(prometheus-client reads it when it is imported) and removes it when they have stopped.
Each process writes its counters and histograms to its own memory-mapped files there, and
a scrape, whichever process answers it, adds up every process's files
(https://prometheus.github.io/client_python/multiprocess/). The tenant gauges are not in
those files: they come from the catalog, which every process shares, so the process
answering the scrape reads them once and they are never summed N times. Process, platform
and GC metrics would describe only the one process that answered, so they are left out
then (per-process CPU and memory: the cgroup's, from the node or container exporter).

Exposition: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.backends.transient import RETRIES
from service.catalog import Catalog
from service.tenants import SyncEvent

# Litestar appends "; charset=utf-8" to text/* media types: the 0.0.4 text format.
MEDIA_TYPE: Final = "text/plain; version=0.0.4"
# Seconds: a current database is checked in well under a millisecond; a first sign-in
# creates ~30 objects in a few milliseconds; a migration over a big table takes seconds.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A request: the fast path answers in a fraction of a millisecond.
REQUEST_BUCKETS: Final = (0.0005, *BUCKETS)
# The sign-in route, whose 200 without a full sync is a fast-path hit.
SIGN_IN_ROUTE: Final = "/api/user/initialize"
UNMATCHED: Final = "unmatched"  # the route label of a request no route matched (404s)
# prometheus-client's own switch to multiprocess mode, read when it is imported.
MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"


_Children = tuple[Counter, Histogram]


def multiprocess_dir() -> str | None:
    """The directory shared by the server processes, when this is one of several."""
    path = os.environ.get(MULTIPROC_DIR) or None
    if path is not None and not getattr(values.ValueClass, "_multiprocess", False):
        # Set after prometheus-client was imported: values would stay in this process.
        raise RuntimeError(f"{MULTIPROC_DIR} must be set before prometheus_client is imported")
    return path


class Metrics:
    """One app's metrics: the observer its TenantService is built with (service.wiring),
    and the middleware's request counter (service.api.request_log)."""

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_dir()
        self.registry = registry = CollectorRegistry()
        self.syncs = Counter(
            "tenantdb_syncs",
            "Full schema syncs by outcome and trigger.",
            ("status", "trigger"),
            registry=registry,
        )
        self.sync_seconds = Histogram(
            "tenantdb_sync_duration_seconds",
            "Time a full schema sync took.",
            buckets=BUCKETS,
            registry=registry,
        )
        self.provisioned = Counter(
            "tenantdb_provisioned", "Tenant databases created.", registry=registry
        )
        self.fast_path_hits = Counter(
            "tenantdb_fast_path_hits",
            "Sign-ins answered by the fast path: the database was current (a header read).",
            registry=registry,
        )
        self.requests = Counter(
            "tenantdb_http_requests",
            "HTTP requests by route template, method and status.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.request_seconds = Histogram(
            "tenantdb_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ("route", "method", "status"),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        if self.multiprocess_dir is None:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)  # registers itself only where gc.get_stats exists
        # route -> method -> status -> (counter, histogram): labels() builds a tuple and
        # takes a lock on every call; a hit here allocates nothing.
        self._children: dict[str, dict[str, dict[int, _Children]]] = {}

    def __call__(self, event: SyncEvent) -> None:
        """The SyncObserver: runs on the event loop after every full sync."""
        self.syncs.labels(event.result.status, event.trigger).inc()
        if event.created:
            self.provisioned.inc()
        self.sync_seconds.observe(event.result.duration_ms / 1000)

    def fast_path(self) -> None:
        """A sign-in found the database current (a header read): no sync ran."""
        self.fast_path_hits.inc()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (the request-log middleware, after the response).

        On the event loop, and it cannot block: with one process the values are in memory;
        with several they are memory-mapped files on /dev/shm (cli._multiprocess_metrics), a
        tmpfs, so an increment is a memory write that never waits on a disk."""
        children = self._children.get(route, {}).get(method, {}).get(status)
        if children is None:
            children = self._child(route, method, status)
        children[0].inc()
        children[1].observe(seconds)

    def _child(self, route: str, method: str, status: int) -> _Children:
        labels = (route, method, str(status))
        children = (self.requests.labels(*labels), self.request_seconds.labels(*labels))
        self._children.setdefault(route, {}).setdefault(method, {})[status] = children
        return children

    async def render(self, catalog: Catalog, versions: Iterable[str]) -> bytes:
        """The exposition text; `versions` (the registry's) are shown even at zero tenants."""
        _, by_version, drifted = await catalog.summary()
        damaged = await catalog.count("damaged")
        gauges = TenantGauges({version: 0 for version in versions} | by_version, drifted, damaged)
        retries = TransientRetries()
        if self.multiprocess_dir is None:
            # This process's values, in memory: nothing here waits on disk.
            return generate_latest(_Scrape((self.registry, gauges, retries)))
        every_process = CollectorRegistry()
        MultiProcessCollector(every_process, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        # Reads every process's files: off the event loop (a scrape is rare, a hop cheap).
        scrape = _Scrape((every_process, gauges, retries))
        return await asyncio.to_thread(generate_latest, scrape)


class TenantGauges(Collector):
    """The tenant gauges of one scrape, from the catalog: shown once, never summed."""

    def __init__(self, by_version: dict[str, int], drifted: int, damaged: int) -> None:
        self.by_version, self.drifted, self.damaged = by_version, drifted, damaged

    def collect(self) -> Iterator[Metric]:
        tenants = GaugeMetricFamily(
            "tenantdb_tenants", "Tenants by recorded schema version.", labels=("version",)
        )
        for version, count in self.by_version.items():
            tenants.add_metric((version,), count)
        yield tenants
        yield GaugeMetricFamily(
            "tenantdb_tenants_drifted", "Tenants whose schema drifted.", value=self.drifted
        )
        yield GaugeMetricFamily(
            "tenantdb_tenants_damaged",
            "Tenants whose database file is not a sound SQLite database (left as it is).",
            value=self.damaged,
        )


class TransientRetries(Collector):
    """Retries of transient backend errors (busy, checkpoint, a namespace loading), counted
    by the backend itself: this process's, like the process metrics."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tenantdb_transient_retries",
            "Retries of transient backend errors, by kind (this process).",
            labels=("kind",),
        )
        for kind, count in RETRIES.snapshot().items():
            family.add_metric((kind,), count)
        yield family


class _Scrape(Collector):
    """Several collectors as one, for generate_latest."""

    def __init__(self, parts: tuple[Collector, ...]) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()

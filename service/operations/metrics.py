"""Prometheus metrics: counters fed as TenantService's observer, gauges read at scrape time.

The text exposition format is small enough to write here (about 60 lines) rather than
add prometheus_client: four metric families, no process-wide registry to keep apart
between apps (each TenantService gets its own `Metrics`), and nothing to configure.
Format: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

Counters count full syncs only: a returning user whose database is current takes the fast
path (a header read) and is not an event. They are per process, as Prometheus expects;
the tenant gauges come from the catalog, which every process shares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Final

from service.catalog import Catalog
from service.tenants import SyncEvent

# Litestar appends "; charset=utf-8" to text/* media types.
MEDIA_TYPE: Final = "text/plain; version=0.0.4"
# Seconds: a current database is checked in well under a millisecond; a first sign-in
# creates ~30 objects in a few milliseconds; a migration over a big table takes seconds.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """One app's counters: the observer its TenantService is built with (service.wiring)."""

    def __init__(self) -> None:
        self.syncs: Counter[tuple[str, str]] = Counter()  # (status, trigger)
        self.provisioned = 0
        self.bucket_counts = [0] * len(BUCKETS)  # per bucket, made cumulative when shown
        self.duration_sum = 0.0
        self.duration_count = 0

    def __call__(self, event: SyncEvent) -> None:
        """Observers run on the event loop, one at a time: no lock needed."""
        self.syncs[(event.result.status, event.trigger)] += 1
        if event.created:
            self.provisioned += 1
        seconds = event.result.duration_ms / 1000
        self.duration_sum += seconds
        self.duration_count += 1
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.bucket_counts[i] += 1
                break

    async def render(self, catalog: Catalog, versions: Iterable[str]) -> str:
        """The exposition text; `versions` (the registry's) are shown even at zero tenants."""
        _, by_version, drifted = await catalog.summary()
        tenants = {version: 0 for version in versions} | by_version
        return "".join(self._lines(tenants, drifted))

    def _lines(self, tenants: dict[str, int], drifted: int) -> Iterator[str]:
        yield from _family(
            "tenantdb_syncs_total", "counter", "Full schema syncs by outcome and trigger."
        )
        for (status, trigger), count in sorted(self.syncs.items()):
            yield _sample("tenantdb_syncs_total", (("status", status), ("trigger", trigger)), count)
        yield from _family(
            "tenantdb_sync_duration_seconds", "histogram", "Time a full schema sync took."
        )
        cumulative = 0
        for bound, count in zip(BUCKETS, self.bucket_counts, strict=True):
            cumulative += count
            yield _sample(
                "tenantdb_sync_duration_seconds_bucket", (("le", repr(bound)),), cumulative
            )
        name = "tenantdb_sync_duration_seconds"
        yield _sample(f"{name}_bucket", (("le", "+Inf"),), self.duration_count)
        yield _sample(f"{name}_sum", (), self.duration_sum)
        yield _sample(f"{name}_count", (), self.duration_count)
        yield from _family("tenantdb_provisioned_total", "counter", "Tenant databases created.")
        yield _sample("tenantdb_provisioned_total", (), self.provisioned)
        yield from _family("tenantdb_tenants", "gauge", "Tenants by recorded schema version.")
        for version, count in sorted(tenants.items()):
            yield _sample("tenantdb_tenants", (("version", version),), count)
        yield from _family("tenantdb_tenants_drifted", "gauge", "Tenants whose schema drifted.")
        yield _sample("tenantdb_tenants_drifted", (), drifted)


def _family(name: str, kind: str, help_text: str) -> Iterator[str]:
    yield f"# HELP {name} {help_text}\n"
    yield f"# TYPE {name} {kind}\n"


def _sample(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(text)}"' for key, text in labels)
        name = f"{name}{{{inner}}}"
    return f"{name} {value!r}\n" if isinstance(value, float) else f"{name} {value}\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

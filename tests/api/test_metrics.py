"""GET /metrics: Prometheus text (prometheus-client) with sync counters, durations,
provisioning, tenant gauges, requests by route and status, fast-path sign-ins, the process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from service.operations.metrics import BUCKETS
from tests.api.conftest import registry_upto

_SAMPLE = re.compile(r"(?P<name>[a-z_]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(params=["local", pytest.param("sqld", marks=pytest.mark.sqld)])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SYNC_FAMILIES = {
    "tenantdb_syncs_total",
    "tenantdb_sync_duration_seconds",
    "tenantdb_provisioned_total",
    "tenantdb_tenants",
    "tenantdb_tenants_drifted",
}


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """The exposition text as ({family: type}, {(name, labels): value})."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            types[family] = kind
        elif line and not line.startswith("#"):
            match = _SAMPLE.fullmatch(line)
            assert match is not None, line
            labels = tuple(sorted(_LABEL.findall(match["labels"] or "")))
            samples[(match["name"], labels)] = float(match["value"])
    return types, samples


def scrape(server: Any, **headers: str) -> Any:
    with server.client() as client:
        return client.get("/metrics", headers=headers)


def test_metrics_count_syncs_provisioning_and_tenants(serve: Any, tmp_path: Path) -> None:
    old = serve(registry=registry_upto(tmp_path, "1.1.0"))
    assert old.initialize("olga").status_code == 200  # stays at 1.1.0
    server = serve()  # a new process: its counters start at zero, the catalog persists
    for user in ("ann", "ben", "ann"):  # the second "ann" takes the fast path: no sync
        assert server.initialize(user).status_code == 200
    server.tenant(server.initialize("ben")).script(
        "DROP INDEX idx_trades_symbol; CREATE INDEX idx_trades_symbol ON trades (price)"
    )
    with server.client() as client:
        for user in ("ann", "ben"):
            sync = client.post(f"/api/user/sync-schema/{user}", headers=server.headers(user))
            assert sync.status_code == 200

    response = scrape(server)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    types, samples = parse(response.text)
    assert {k: v for k, v in types.items() if k in SYNC_FAMILIES} == {
        "tenantdb_syncs_total": "counter",
        "tenantdb_sync_duration_seconds": "histogram",
        "tenantdb_provisioned_total": "counter",
        "tenantdb_tenants": "gauge",
        "tenantdb_tenants_drifted": "gauge",
    }
    histogram = "tenantdb_sync_duration_seconds"
    assert {
        k: v for k, v in samples.items() if k[0] in SYNC_FAMILIES and not k[0].startswith(histogram)
    } == {
        ("tenantdb_syncs_total", (("status", "applied"), ("trigger", "sign-in"))): 2,
        ("tenantdb_syncs_total", (("status", "drifted"), ("trigger", "manual"))): 1,
        ("tenantdb_syncs_total", (("status", "up_to_date"), ("trigger", "manual"))): 1,
        ("tenantdb_provisioned_total", ()): 2,
        ("tenantdb_tenants", (("version", "1.0.0"),)): 0,
        ("tenantdb_tenants", (("version", "1.1.0"),)): 1,
        ("tenantdb_tenants", (("version", "1.2.0"),)): 2,
        ("tenantdb_tenants_drifted", ()): 1,
    }
    buckets = [samples[(f"{histogram}_bucket", (("le", repr(b)),))] for b in BUCKETS]
    assert buckets == sorted(buckets)  # cumulative
    assert samples[(f"{histogram}_bucket", (("le", "+Inf"),))] == 4
    assert samples[(f"{histogram}_count", ())] == 4
    assert 0 < samples[(f"{histogram}_sum", ())] < 10
    # Sign-ins: 3 to this server's "ann" and "ben" ran a sync, 2 were the fast path's.
    assert samples[("tenantdb_fast_path_hits_total", ())] == 2
    requests = {k[1]: v for k, v in samples.items() if k[0] == "tenantdb_http_requests_total"}
    assert requests == {
        (("method", "POST"), ("route", "/api/user/initialize"), ("status", "200")): 4,
        (
            ("method", "POST"),
            ("route", "/api/user/sync-schema/{user_id}"),
            ("status", "200"),
        ): 2,
    }


def test_metrics_start_at_zero_and_are_open_without_a_token(serve: Any) -> None:
    _, samples = parse(scrape(serve()).text)
    assert samples[("tenantdb_sync_duration_seconds_count", ())] == 0
    assert samples[("tenantdb_provisioned_total", ())] == 0
    assert samples[("tenantdb_tenants", (("version", "1.2.0"),))] == 0
    assert not [k for k in samples if k[0] == "tenantdb_syncs_total"]


def test_metrics_token_when_set_is_required(serve: Any) -> None:
    token = "metrics-" + "m" * 24
    server = serve(metrics_token=token)
    assert scrape(server).status_code == 401
    assert scrape(server, Authorization="Bearer wrong-token-0123456789").status_code == 401
    # A user's JWT is not the metrics token either.
    assert scrape(server, **server.headers("ops", admin=True)).status_code == 401
    assert scrape(server, Authorization=f"Bearer {token}").status_code == 200


def test_requests_are_counted_by_route_and_status_with_latency(serve: Any) -> None:
    server = serve()
    assert server.initialize("ann").status_code == 200  # a sync: no fast-path hit
    with server.client() as client:
        assert client.post("/api/user/initialize", json={"user_id": "ann"}).status_code == 401
        assert (
            client.get("/api/user/schema-version/ann", headers=server.headers("ann")).status_code
            == 200
        )
    scrape(server)  # the first scrape is counted once it is answered

    types, samples = parse(scrape(server).text)

    initialize = (("method", "POST"), ("route", "/api/user/initialize"))
    counts = {k[1]: v for k, v in samples.items() if k[0] == "tenantdb_http_requests_total"}
    assert counts == {
        (*initialize, ("status", "200")): 1,
        (*initialize, ("status", "401")): 1,
        (
            ("method", "GET"),
            ("route", "/api/user/schema-version/{user_id}"),
            ("status", "200"),
        ): 1,
        (("method", "GET"), ("route", "/metrics"), ("status", "200")): 1,
    }
    latency = "tenantdb_http_request_duration_seconds"
    assert types[latency] == "histogram"
    assert samples[(f"{latency}_count", (*initialize, ("status", "200")))] == 1
    assert samples[(f"{latency}_bucket", (("le", "+Inf"), *initialize, ("status", "200")))] == 1
    assert 0 < samples[(f"{latency}_sum", (*initialize, ("status", "200")))] < 10
    assert samples[("tenantdb_fast_path_hits_total", ())] == 0
    # The process's own metrics, from prometheus-client's collectors.
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert ("python_info", ()) not in samples  # it has labels
    assert any(k[0] == "python_info" for k in samples)


def test_two_apps_in_one_process_count_apart(serve: Any) -> None:
    first = serve()
    for user in ("ann", "ann", "ann"):
        assert first.initialize(user).status_code == 200
    _, before = parse(scrape(first).text)
    second = serve()  # a new app in this process: its own registry

    _, after = parse(scrape(second).text)

    assert before[("tenantdb_fast_path_hits_total", ())] == 2
    assert after[("tenantdb_fast_path_hits_total", ())] == 0
    assert not [k for k in after if k[0] == "tenantdb_syncs_total"]


def test_the_readme_documents_every_tenantdb_metric(serve: Any) -> None:
    types, _ = parse(scrape(serve()).text)
    readme = (Path(__file__).parents[2] / "README.md").read_text()

    families = {f for f in types if f.startswith("tenantdb_") and not f.endswith("_created")}
    assert len(families) == 10  # this test's list must grow with the metrics
    assert [f for f in sorted(families) if f"`{f}" not in readme] == []

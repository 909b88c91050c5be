"""deploy/'s sqld limits come from the sizing rule deploy/README.md states, and the bench
that measures it uses the same rule (contract "sqld at 10,000 namespaces")."""

from __future__ import annotations

import re

from bench.sqld_scale import sizing
from tests.deploy.composekit import DEPLOY, load_compose

SHELL = {"TENANTDB_JWKS_URL": "https://idp/jwks.json", "TENANTDB_REGISTRY_DIR": "/srv/registry"}


def rule(nofile: int, connections: int) -> int:
    """deploy/README.md, "Sizing": 5 files per loaded namespace, 7 per connection, 3,500
    spare."""
    return (nofile - 7 * connections - 3500) // 5


def flags(args: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in args if a.startswith("--") and "=" in a)


def within_rule(active: int, nofile: int, connections: int) -> bool:
    """At most what the rule allows, rounded down by less than 10%."""
    allowed = rule(nofile, connections)
    return 0.9 * allowed <= active <= allowed


def test_compose_derives_max_active_namespaces_from_its_file_limit() -> None:
    sqld = load_compose(SHELL)["services"]["sqld"]
    given = flags(sqld["command"])
    nofile = sqld["ulimits"]["nofile"]["soft"]
    connections = int(given["max-concurrent-connections"])
    active = int(given["max-active-namespaces"])
    assert within_rule(active, nofile, connections), (active, rule(nofile, connections))
    # Memory: 0.37 MB per loaded namespace and 0.2 MB per held stream fit the limit.
    held = int(
        load_compose(SHELL)["services"]["tenantdb"]["environment"]["TENANTDB_SQLD_HELD_STREAMS"]
    )
    assert held <= connections
    assert active * 0.37 + held * 0.2 + 512 <= int(sqld["mem_limit"].removesuffix("g")) * 1024


def test_the_sqld_unit_derives_it_from_its_limit_nofile() -> None:
    unit = (DEPLOY / "sqld.service").read_text()
    command = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.MULTILINE | re.DOTALL)
    assert command is not None
    given = flags(command.group(1).replace("\\\n", " ").split())
    limit = re.search(r"^LimitNOFILE=(\d+)$", unit, re.MULTILINE)
    assert limit is not None
    connections = int(given["max-concurrent-connections"])
    active = int(given["max-active-namespaces"])
    assert within_rule(active, int(limit.group(1)), connections)
    assert "--enable-namespaces" in command.group(1)


def test_the_bench_sizes_sqld_by_the_same_rule() -> None:
    for nofile, held in ((20_000, 256), (65_536, 1024), (131_072, 1024)):
        connections, active = sizing(nofile, held)
        assert connections == 2 * held
        assert active == rule(nofile, connections)
    assert sizing(20_000, 256) == (512, 2583)  # what deploy/README.md's table says

"""Rate limits over real HTTP: per user for sync-schema and export, per address for
requests that fail authentication; sign-ins never limited."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
import pytest

from service.config import ConfigError, load_settings

INIT = "/api/user/initialize"


def forged(user_id: str) -> dict[str, str]:
    """A well-formed token for `user_id` signed with the wrong secret."""
    token = jwt.encode({"sub": user_id, "exp": 2**40}, "wrong-secret-" + "y" * 40, "HS256")
    return {"Authorization": f"Bearer {token}"}


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["success"] is False
    assert "try again" in body["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_sync_schema_and_export_share_a_per_user_budget(serve: Any) -> None:
    server = serve(rate_limit="on", rate_limit_user=3)
    server.initialize("alice")
    server.initialize("bob")
    alice = server.headers("alice")
    with server.client() as client:
        assert client.post("/api/user/sync-schema/alice", headers=alice).status_code == 200
        assert client.get("/api/user/alice/export", headers=alice).status_code == 200
        third = client.post("/api/user/sync-schema/alice", headers=alice)
        assert third.status_code == 200
        assert third.headers["RateLimit-Remaining"] == "0"
        assert_rate_limited(client.post("/api/user/sync-schema/alice", headers=alice))
        assert_rate_limited(client.get("/api/user/alice/export", headers=alice))
        # Another user's budget is their own, and sign-ins are never limited.
        bob = client.post("/api/user/sync-schema/bob", headers=server.headers("bob"))
        assert bob.status_code == 200
        again = client.post(INIT, json={"user_id": "alice"}, headers=alice)
        assert again.status_code == 200


def test_the_default_user_limit_is_thirty_a_minute(serve: Any) -> None:
    server = serve(rate_limit="on")
    server.initialize("carol")
    with server.client() as client:
        codes = [
            client.post("/api/user/sync-schema/carol", headers=server.headers("carol")).status_code
            for _ in range(32)
        ]
    assert codes == [200] * 30 + [429] * 2


def test_forged_tokens_do_not_spend_the_users_budget(serve: Any) -> None:
    server = serve(rate_limit="on", rate_limit_user=2, rate_limit_auth_failures=100)
    server.initialize("dave")
    with server.client() as client:
        for _ in range(5):
            response = client.post("/api/user/sync-schema/dave", headers=forged("dave"))
            assert response.status_code == 401
        codes = [
            client.post("/api/user/sync-schema/dave", headers=server.headers("dave")).status_code
            for _ in range(2)
        ]
    assert codes == [200, 200]


def test_failed_authentications_are_limited_per_address(serve: Any) -> None:
    server = serve(rate_limit="on", rate_limit_auth_failures=3)
    with server.client() as client:
        bad = [
            client.post(INIT, json={"user_id": "erin"}, headers=forged("erin")) for _ in range(3)
        ]
        assert [r.status_code for r in bad] == [401] * 3
        missing = client.get("/api/user/schema-version/erin")  # no token at all
        assert_rate_limited(missing)
        assert_rate_limited(client.post(INIT, json={"user_id": "erin"}, headers=forged("erin")))
        # A good token from the same address (an app server signing its users in) passes.
        good = client.post(INIT, json={"user_id": "erin"}, headers=server.headers("erin"))
        assert good.status_code == 200, good.text
        sync = client.post("/api/user/sync-schema/erin", headers=server.headers("erin"))
        assert sync.status_code == 200


def test_sign_ins_from_one_address_are_never_limited(serve: Any) -> None:
    """An app server signs all its users in from one address, and one user's concurrent
    first sign-ins all succeed: limits on, at their defaults."""
    server = serve(rate_limit="on")

    async def burst(requests: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post(INIT, json={"user_id": u}, headers=h) for u, h in requests)
            )

    first = asyncio.run(burst([("jill", server.headers("jill"))] * 50))
    assert [r.status_code for r in first] == [200] * 50
    assert sum(r.json()["created"] for r in first) == 1
    returning = asyncio.run(
        burst([(f"u{i % 20}", server.headers(f"u{i % 20}")) for i in range(200)])
    )
    assert [r.status_code for r in returning] == [200] * 200


def test_rate_limit_off_turns_every_limit_off(serve: Any) -> None:
    server = serve(rate_limit="off", rate_limit_user=1, rate_limit_auth_failures=1)
    server.initialize("fay")
    with server.client() as client:
        syncs = [
            client.post("/api/user/sync-schema/fay", headers=server.headers("fay")).status_code
            for _ in range(5)
        ]
        bad = [client.post(INIT, json={"user_id": "fay"}, headers=forged("fay")) for _ in range(5)]
    assert syncs == [200] * 5
    assert [r.status_code for r in bad] == [401] * 5


@pytest.mark.parametrize(
    ("setting", "value"),
    [("rate_limit", "sometimes"), ("rate_limit_user", "0"), ("rate_limit_auth_failures", "-1")],
)
def test_bad_rate_limit_settings_stop_the_start(setting: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"TENANTDB_{setting.upper()}"):
        load_settings({f"TENANTDB_{setting.upper()}": value, "TENANTDB_JWT_SECRET": "s" * 40})

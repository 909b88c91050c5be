"""CORS over real HTTP: a browser app's preflight is answered before authentication,
from the origins in TENANTDB_CORS_ORIGINS only."""

from __future__ import annotations

from typing import Any

import pytest

from service.config import ConfigError, load_settings

APP = "https://app.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(serve: Any) -> None:
    server = serve(cors_origins=(APP, "https://admin.example.com"))
    with server.client() as client:
        response = client.options("/api/user/initialize", headers={"Origin": APP, **PREFLIGHT})
    assert response.status_code == 204, response.text
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


def test_responses_to_an_allowed_origin_carry_its_headers(serve: Any) -> None:
    server = serve(cors_origins=(APP,))
    with server.client() as client:
        ok = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Origin": APP, **server.headers("alice")},
        )
        refused = client.post(
            "/api/user/initialize", json={"user_id": "a"}, headers={"Origin": APP}
        )
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    exposed = ok.headers["Access-Control-Expose-Headers"].lower()
    assert "retry-after" in exposed
    assert "x-request-id" in exposed
    # The page can read why it was refused.
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == APP


def test_other_origins_get_no_cors_headers(serve: Any) -> None:
    server = serve(cors_origins=(APP,))
    with server.client() as client:
        response = client.options(
            "/api/user/initialize", headers={"Origin": "https://evil.example", **PREFLIGHT}
        )
    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers


def test_no_origin_is_allowed_by_default(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        response = client.options("/api/user/initialize", headers={"Origin": APP, **PREFLIGHT})
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_origins_come_comma_separated_from_the_environment() -> None:
    settings = load_settings(
        {"TENANTDB_CORS_ORIGINS": f"{APP}, http://localhost:3000", "TENANTDB_JWT_SECRET": "s" * 40}
    )
    assert settings.cors_origins == (APP, "http://localhost:3000")


@pytest.mark.parametrize(
    "origin", ["https://app.example.com/", "app.example.com", "ftp://x.example"]
)
def test_a_value_that_is_not_an_origin_stops_the_start(origin: str) -> None:
    with pytest.raises(ConfigError, match="TENANTDB_CORS_ORIGINS"):
        load_settings({"TENANTDB_CORS_ORIGINS": origin, "TENANTDB_JWT_SECRET": "s" * 40})

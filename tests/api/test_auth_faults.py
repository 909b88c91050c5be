"""Tokens and settings that used to slip past authentication: each is a clear 401 or a
refused start, and a slow identity provider never holds sign-ins up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from service.config import ConfigError, load_settings
from tests.api.conftest import SECRET
from tests.api.test_auth import claims, hand_signed

LOCAL = pytest.mark.parametrize("backend_kind", ["local"])  # auth is the same on both


@pytest.mark.parametrize("role", ["", "   "])
def test_an_empty_admin_role_is_refused_at_start_up(role: str) -> None:
    with pytest.raises(ConfigError, match="TENANTDB_ADMIN_ROLE"):
        load_settings({}, jwt_secret=SECRET, admin_role=role)


@LOCAL
@pytest.mark.parametrize(
    ("header", "why"),
    [
        ({"alg": "HS256", "typ": "JWT", "crit": ["b64"], "b64": False}, "crit"),
        ({"alg": "HS256", "crit": "not-a-list"}, "crit not a list"),
        ({"alg": ["HS256"]}, "alg a list"),
        ({"alg": {"x": 1}}, "alg an object"),
        ({"alg": "HS256", "kid": 7}, "kid a number"),
        ({"alg": "HS256", "kid": ["a"]}, "kid a list"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_token_with_a_malformed_header_is_a_401(
    serve: Any, header: dict[str, Any], why: str
) -> None:
    token = hand_signed(header, claims(role=""), SECRET.encode())
    server = serve()
    with server.client() as client:
        response = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 401, (why, response.text)
    assert response.json()["code"] == "unauthorized"


@LOCAL
def test_an_empty_role_claim_is_never_admin(serve: Any) -> None:
    server = serve()
    token = jwt.encode(claims("mallory", role="", roles=[""], scope=""), SECRET)
    with server.client() as client:
        response = client.get("/api/admin/tenants", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


class SlowJwks:
    """A JWKS endpoint that answers after `delay` seconds, counting requests."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.delay = 0.0
        self.fetches = 0
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.fetches += 1
                time.sleep(endpoint.delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def slow_jwks(idp_key: rsa.RSAPrivateKey) -> Iterator[SlowJwks]:
    endpoint = SlowJwks(idp_key)
    yield endpoint
    endpoint.close()


@LOCAL
def test_a_slow_jwks_holds_no_sign_in_past_the_timeout_and_is_fetched_once(
    serve: Any, slow_jwks: SlowJwks, idp_key: rsa.RSAPrivateKey
) -> None:
    slow_jwks.delay = 4.0
    server = serve(jwt_algorithms=("RS256",), jwks_url=slow_jwks.url, jwks_timeout=1.0)
    token = jwt.encode(claims(), idp_key, "RS256", headers={"kid": "k1"})
    results: list[tuple[int, float]] = []

    def sign_in() -> None:
        started = time.monotonic()
        with server.client() as client:
            response = client.post(
                "/api/user/initialize",
                json={"user_id": "alice"},
                headers={"Authorization": f"Bearer {token}"},
            )
        results.append((response.status_code, time.monotonic() - started))

    threads = [threading.Thread(target=sign_in) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Each waited about the timeout (1 s), well short of the endpoint's 4 s, and was told
    # why; the five shared one fetch.
    assert [status for status, _ in results] == [401] * 5
    assert max(seconds for _, seconds in results) < 3.0
    assert slow_jwks.fetches == 1
    # The fetch finished in its own time: its keys serve the next sign-in at once.
    time.sleep(3.5)
    with server.client() as client:
        response = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    assert slow_jwks.fetches == 1

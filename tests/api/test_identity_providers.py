"""Tokens from real identity providers: public keys of several kinds, and a JWKS with
keys rotating by `kid`, served over loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def claims(user: str = "alice") -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user, "iat": now, "exp": now + 600, "iss": "https://idp.test/"}


def pem(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
KEYS: dict[str, Callable[[], PrivateKey]] = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


@pytest.mark.parametrize("algorithm", list(KEYS), ids=list(KEYS))
def test_asymmetric_tokens_verify_with_a_public_key_file(
    serve: Any, tmp_path: Path, algorithm: str
) -> None:
    key = KEYS[algorithm]()
    public = tmp_path / "idp.pem"
    public.write_bytes(pem(key.public_key()))
    server = serve(
        jwt_algorithms=(algorithm,), jwt_public_key_file=public, jwt_issuer="https://idp.test/"
    )
    other = KEYS[algorithm]()
    with server.client() as client:
        good = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {jwt.encode(claims(), key, algorithm)}"},
        )
        forged = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {jwt.encode(claims(), other, algorithm)}"},
        )
    assert good.status_code == 200, good.text
    assert forged.status_code == 401


class Jwks:
    """A JWKS endpoint whose key set the test can change, and a count of fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, kid: str, key: rsa.RSAPrivateKey) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.keys = [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    endpoint = Jwks()
    yield endpoint
    endpoint.close()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_jwks_keys_are_cached_and_a_new_kid_is_fetched_on_rotation(serve: Any, jwks: Jwks) -> None:
    first, second = rsa_key(), rsa_key()
    jwks.publish("k1", first)
    server = serve(
        jwt_algorithms=("RS256",),
        jwks_url=jwks.url,
        jwt_issuer="https://idp.test/",
        jwks_cooldown=0.0,
    )

    def call(key: Any, kid: str, user: str) -> int:
        token = jwt.encode(claims(user), key, "RS256", headers={"kid": kid})
        with server.client() as client:
            response = client.post(
                "/api/user/initialize",
                json={"user_id": user},
                headers={"Authorization": f"Bearer {token}"},
            )
        status: int = response.status_code
        return status

    assert [call(first, "k1", "alice"), call(first, "k1", "alice")] == [200, 200]
    assert jwks.fetches == 1  # cached
    jwks.publish("k2", second)  # the provider rotates its signing key
    assert call(second, "k2", "bob") == 200  # unknown kid: fetched again
    assert call(first, "k2", "carol") == 401  # signed with the old key, new kid: refused
    assert call(first, "unknown", "dave") == 401

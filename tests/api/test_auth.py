"""Every way a token or an input can be wrong: 401/403/400 with a JSON message, no file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api.conftest import SECRET


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed by hand with any bytes (PyJWT refuses PEM keys as secrets)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(user: str = "alice", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user, "iat": now, "exp": now + 600, **extra}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def public_pem(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def now_plus(seconds: int) -> int:
    return int(time.time()) + seconds


BAD_TOKENS: list[tuple[str, str | None, str]] = [
    ("missing header", None, "missing Authorization"),
    ("not bearer", "Basic YWxpY2U6c2VjcmV0", "Bearer <token>"),
    ("bearer without token", "Bearer", "Bearer <token>"),
    ("malformed", "Bearer not.a.jwt", "malformed"),
    ("bad signature", "Bearer " + jwt.encode(claims(), "another-secret-" + "y" * 40), "invalid"),
    ("expired", "Bearer " + jwt.encode(claims(exp=now_plus(-3600)), SECRET), "expired"),
    ("not yet valid", "Bearer " + jwt.encode(claims(nbf=now_plus(3600)), SECRET), "not valid yet"),
    ("no exp", "Bearer " + jwt.encode({"sub": "alice"}, SECRET), "'exp'"),
    ("alg none", "Bearer " + jwt.encode(claims(), "", algorithm="none"), "'none' is not allowed"),
    ("no subject", "Bearer " + jwt.encode({"exp": now_plus(600)}, SECRET), "'sub'"),
]


@pytest.mark.parametrize(
    ("header", "expected"), [(h, e) for _, h, e in BAD_TOKENS], ids=[i for i, _, _ in BAD_TOKENS]
)
def test_bad_tokens_get_401_with_www_authenticate(
    serve: Any, header: str | None, expected: str
) -> None:
    server = serve()
    headers = {} if header is None else {"Authorization": header}
    with server.client() as client:
        response = client.post("/api/user/initialize", json={"user_id": "alice"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="tenantdb"')
    assert response.json()["success"] is False
    assert expected in response.json()["message"]
    assert not (Path(server.settings.data_dir) / "tenants").exists()


def test_rs256_public_key_used_as_hs256_secret_is_rejected(
    serve: Any, public_pem: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    server = serve(jwt_algorithms=("HS256", "RS256"), jwt_public_key_file=public_pem)
    forged = hand_signed({"alg": "HS256", "typ": "JWT"}, claims(), public_pem.read_bytes())
    genuine = jwt.encode(claims(), rsa_key, algorithm="RS256")
    with server.client() as client:
        bad = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {forged}"},
        )
        good = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {genuine}"},
        )
    assert bad.status_code == 401
    assert good.status_code == 200


def test_algorithm_outside_the_allow_list_is_rejected(
    serve: Any, public_pem: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    server = serve()  # HS256 only
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    with server.client() as client:
        response = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 401
    assert "'RS256' is not allowed" in response.json()["message"]


@pytest.mark.parametrize(
    ("settings", "token_claims", "status"),
    [
        ({"jwt_issuer": "https://idp.example"}, {"iss": "https://evil.example"}, 401),
        ({"jwt_issuer": "https://idp.example"}, {"iss": "https://idp.example"}, 200),
        ({"jwt_audience": "tenantdb"}, {"aud": "other-app"}, 401),
        ({"jwt_audience": "tenantdb"}, {"aud": "tenantdb"}, 200),
        ({"jwt_user_claim": "uid"}, {"uid": "alice", "sub": "somebody-else"}, 200),
    ],
    ids=["wrong issuer", "right issuer", "wrong audience", "right audience", "custom user claim"],
)
def test_issuer_audience_and_user_claim_are_configurable(
    serve: Any, settings: dict[str, Any], token_claims: dict[str, Any], status: int
) -> None:
    server = serve(**settings)
    token = jwt.encode(claims(**token_claims), SECRET)
    with server.client() as client:
        response = client.post(
            "/api/user/initialize",
            json={"user_id": "alice"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/user/initialize", {"user_id": "mallory"}),
        ("POST", "/api/user/sync-schema/mallory", None),
        ("GET", "/api/user/schema-version/mallory", None),
    ],
    ids=["initialize", "sync-schema", "schema-version"],
)
def test_acting_on_another_user_is_403_and_touches_nothing(
    serve: Any, method: str, path: str, body: dict[str, str] | None
) -> None:
    server = serve()
    with server.client() as client:
        response = client.request(method, path, json=body, headers=server.headers("alice"))
    assert response.status_code == 403
    assert "its own user_id" in response.json()["message"]
    assert not (Path(server.settings.data_dir) / "tenants").exists()


@pytest.mark.parametrize(
    "grant",
    [
        {"scope": "read tenantdb:admin"},
        {"scp": "read tenantdb:admin"},  # Azure AD: a space-separated string
        {"scp": ["read", "tenantdb:admin"]},
        {"scp": "read tenantdb:admins"},  # not the role: refused
    ],
    ids=["scope", "scp-string", "scp-list", "scp-other"],
)
def test_admin_role_can_come_as_scope(serve: Any, grant: dict[str, Any]) -> None:
    server = serve()
    token = jwt.encode(claims("ops", **grant), SECRET)
    with server.client() as client:
        response = client.post(
            "/api/user/initialize",
            json={"user_id": "zed"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == (403 if "admins" in str(grant) else 200)


# The fourth id starts with a Cyrillic a (U+0430) on purpose: look-alikes must be refused.
BAD_USER_IDS = ["../etc", "a/b", "a\x00b", "\u0430lice", "x" * 65, "", "a b", "alice\n", "ali.ce"]


@pytest.mark.parametrize(
    "user_id",
    BAD_USER_IDS,
    ids=["traversal", "slash", "nul", "cyrillic a", "too long", "empty", "space", "newline", "dot"],
)
def test_bad_user_ids_are_400_before_any_file(serve: Any, user_id: str) -> None:
    server = serve()
    admin = server.headers("ops", admin=True)
    with server.client() as client:
        body = client.post("/api/user/initialize", json={"user_id": user_id}, headers=admin)
        assert body.status_code == 400, body.text
        assert "user_id" in body.json()["message"]
        if user_id:
            path = client.post(f"/api/user/sync-schema/{quote(user_id, safe='')}", headers=admin)
            assert path.status_code in (400, 404), path.text
            assert path.json()["success"] is False
    assert not (Path(server.settings.data_dir) / "tenants").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "400"),
        (b'{"user_id": "alice", "plan": "gold"}', "plan"),
        (b'{"email": "a@example.com"}', "user_id"),
        (b'{"user_id": 42}', "user_id"),
        (b'{"user_id": "alice", "email": "not-an-email"}', "email"),
    ],
    ids=["invalid json", "unknown field", "missing user_id", "user_id not a string", "bad email"],
)
def test_malformed_bodies_are_400_with_a_message(serve: Any, content: bytes, expected: str) -> None:
    server = serve()
    with server.client() as client:
        response = client.post(
            "/api/user/initialize",
            content=content,
            headers={**server.headers("alice"), "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert expected in body["message"] or expected == str(body["status_code"])


def test_health_is_open_and_detailed_health_needs_admin(serve: Any) -> None:
    server = serve()
    server.initialize("alice")
    with server.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/api/health").json() == {"status": "ok"}
        assert client.get("/api/health/detailed").status_code == 401
        assert (
            client.get("/api/health/detailed", headers=server.headers("alice")).status_code == 403
        )
        detailed = client.get(
            "/api/health/detailed", headers=server.headers("ops", admin=True)
        ).json()
    assert detailed["registry_version"] == "1.2.0"
    assert (detailed["tenants"], detailed["tenants_by_version"], detailed["drifted_tenants"]) == (
        1,
        {"1.2.0": 1},
        0,
    )
    assert detailed["backend_reachable"] is True


def test_openapi_documents_error_responses(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        spec = client.get("/schema/openapi.json").json()
    responses = spec["paths"]["/api/user/initialize"]["post"]["responses"]
    assert {"200", "400", "401", "403", "500"} <= set(responses)

"""The OpenAPI document says what the server does, in words a reader can use: checked on
the document a real server publishes, and against that server's answers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.auth import USER_ID_PATTERN

STATIC = Path(__file__).resolve().parents[2] / "service" / "api" / "static"
METHODS = {"get", "post", "put", "patch", "delete"}
PUBLIC = {"/health", "/api/health", "/metrics"}
# The backends' typed errors (service/errors.py BACKEND_STATUS) as a route must list them.
DATABASE_FAULTS = {
    "404": "database_missing",
    "409": "database_damaged",
    "503": "database_busy",
    "507": "storage_full",
}


@pytest.fixture
def server(serve: Any) -> Any:
    return serve()


@pytest.fixture
def spec(server: Any) -> dict[str, Any]:
    with server.client() as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def ours(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The operations this service defines (others' routes, e.g. /ready, are theirs)."""
    return [
        (path, method, op)
        for path, method, op in operations(spec)
        if path.startswith(("/api/", "/health", "/metrics"))
    ]


def test_every_operation_reads_like_documentation(spec: dict[str, Any]) -> None:
    tags = {tag["name"]: tag.get("description", "") for tag in spec.get("tags", [])}
    assert {"sign-in", "admin: tenants", "admin: rollouts", "health"} <= set(tags)
    assert all(len(text) > 40 for text in tags.values()), tags
    assert len(ours(spec)) >= 15
    ids = set()
    for path, method, op in ours(spec):
        where = f"{method.upper()} {path}"
        summary = op.get("summary", "")
        # A sentence, not a function name such as "DeleteUser".
        assert " " in summary, where
        assert not re.fullmatch(r"[A-Z][A-Za-z]+", summary), where
        assert len(op.get("description", "")) > 60, where
        assert op.get("tags"), where
        assert set(op["tags"]) <= set(tags), where
        assert re.fullmatch(r"[a-z][A-Za-z]+", op["operationId"]), where
        ids.add(op["operationId"])
    assert len(ids) == len(ours(spec))


def test_examples_are_realistic_and_errors_carry_their_code(spec: dict[str, Any]) -> None:
    for path, method, op in ours(spec):
        where = f"{method.upper()} {path}"
        for status, response in op["responses"].items():
            assert len(response["description"]) > 10, (where, status)
            content = response.get("content", {}).get("application/json")
            if content is None:
                continue
            examples = content.get("examples")
            assert examples, (where, status, "no example")
            for example in examples.values():
                value = example["value"]
                assert example.get("summary"), (where, status)
                if int(status) >= 400:
                    assert value["success"] is False
                    assert value["status_code"] == int(status), (where, status, value)
                    assert re.fullmatch(r"[a-z_]+", value["code"]), (where, status, value)
                    # A sentence a person wrote, not random letters.
                    assert " " in value["message"], (where, status, value)
        body = op.get("requestBody")
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            assert schema.get("examples"), where
            for example in schema["examples"]:
                if "user_id" in example:
                    assert re.fullmatch(USER_ID_PATTERN, example["user_id"])


def test_each_route_lists_the_errors_it_can_return(spec: dict[str, Any]) -> None:
    def codes(op: dict[str, Any], status: str) -> set[str]:
        content = op["responses"][status]["content"]["application/json"]
        return {example["value"]["code"] for example in content["examples"].values()}

    for path, method, op in ours(spec):
        where = f"{method.upper()} {path}"
        if path in PUBLIC - {"/metrics"}:
            assert set(op["responses"]) == {"200"}, where
            continue
        assert "401" in op["responses"], where
        assert {"database_busy", "storage_unavailable"} <= codes(op, "503"), where
        touches_a_database = path.startswith("/api/user/") or path.startswith("/api/admin/tenants/")
        if touches_a_database:
            for status, code in DATABASE_FAULTS.items():
                assert code in codes(op, status), (where, status, code)
        if path.startswith("/api/") and path != "/api/health/detailed":
            assert "forbidden" in codes(op, "403"), where
        if "{" in path or "parameters" in op or "requestBody" in op:
            assert "bad_request" in codes(op, "400"), where
    rollouts = spec["paths"]["/api/admin/rollouts"]["post"]
    assert codes(rollouts, "409") == {"conflict"}
    assert codes(rollouts, "404") == {"not_found"}


def test_parameters_and_bodies_state_the_servers_rules(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    user_id_params = 0
    for path, method, op in ours(spec):
        for param in op.get("parameters", []):
            if param["name"] == "user_id":
                assert param["schema"]["pattern"] == USER_ID_PATTERN, (method, path)
                user_id_params += 1
        body = op.get("requestBody")
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            ref = schema["allOf"][0]["$ref"] if "allOf" in schema else schema["$ref"]
            component = schemas[ref.rsplit("/", 1)[1]]
            assert component["additionalProperties"] is False, (method, path)
    assert user_id_params == 6  # 4 sign-in paths, the tenant detail, the audit filter
    assert schemas["InitializeRequest"]["properties"]["user_id"]["pattern"] == USER_ID_PATTERN


def test_security_is_declared_where_a_token_is_needed(spec: dict[str, Any]) -> None:
    assert "security" not in spec  # no document-wide requirement to override
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, method, op in ours(spec):
        if path in PUBLIC:
            assert "security" not in op, path
        else:
            assert op["security"] == [{"bearer": []}], (method, path)


def test_the_export_headers_are_described_as_sent(server: Any, spec: dict[str, Any]) -> None:
    headers = spec["paths"]["/api/user/{user_id}/export"]["get"]["responses"]["200"]["headers"]
    modified = headers["last-modified"]
    assert modified["schema"] == {"type": "string"}  # an HTTP-date, not an RFC 3339 date-time
    assert "HTTP-date" in modified["description"]
    assert "content-disposition" in headers

    assert server.initialize("alice").status_code == 200
    with server.client() as client:
        response = client.get("/api/user/alice/export", headers=server.headers("alice"))
    assert response.status_code == 200
    # RFC 9110 section 5.6.7 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    assert re.fullmatch(
        r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT",
        response.headers["last-modified"],
    )
    assert response.headers["content-disposition"] == 'attachment; filename="alice.db"'


def test_allow_lists_every_documented_method(server: Any, spec: dict[str, Any]) -> None:
    """An undocumented method gets 405 whose Allow names every method of the path."""
    with server.client() as client:
        for path, item in spec["paths"].items():
            if not path.startswith(("/api/", "/health", "/metrics")):
                continue
            documented = {m.upper() for m in item if m in METHODS}
            unused = sorted({"PUT", "PATCH", "DELETE", "POST"} - documented)[0]
            url = path.replace("{user_id}", "alice").replace("{job_id}", "3f9c2a7d41b0e6c8")
            response = client.request(unused, url, headers=server.headers("ops", admin=True))
            assert response.status_code == 405, (unused, path, response.text)
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert documented <= allowed, (path, allowed)
            assert response.json()["status_code"] == 405
            options = client.options(url, headers=server.headers("ops", admin=True))
            assert options.status_code == 204, (path, options.text)
            allowed = {m.strip() for m in options.headers["allow"].split(",")}
            assert documented <= allowed, (path, allowed)


def test_viewers_load_nothing_from_elsewhere(server: Any) -> None:
    with server.client() as client:
        for page in ("", "/redoc", "/swagger", "/elements", "/rapidoc"):
            html = client.get(f"/schema{page}").text
            sources = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
            assert sources, page
            for source in sources:
                assert source.startswith(("/schema/", "data:")), (page, source)


def test_viewer_assets_are_served_as_shipped(server: Any) -> None:
    """Each file listed in static/VERSIONS.md is served with its recorded checksum."""
    manifest = (STATIC / "VERSIONS.md").read_text()
    listed = re.findall(r"`([\w./-]+)` +\| +`([0-9a-f]{64})`", manifest)
    assert len(listed) == 7, listed
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name, digest in listed:
            response = client.get(f"/schema/assets/{name}")
            assert response.status_code == 200, name
            assert hashlib.sha256(response.content).hexdigest() == digest, name
            kind = response.headers["content-type"]
            assert kind.startswith("text/css" if name.endswith(".css") else "text/javascript"), (
                name,
                kind,
            )
            assert "max-age" in response.headers["cache-control"]
        missing = client.get("/schema/assets/redoc/nothing.js")
        assert missing.status_code == 404

"""Bad request input over real HTTP: a 4xx with JSON `message` and `code`, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

INIT = "/api/user/initialize"
JSON = {"Content-Type": "application/json"}
INT64_MAX = 2**63 - 1


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert (body["success"], body["status_code"], body["code"]) == (False, status, code)
    assert body["message"]
    return body


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"user_id": "alice", "email": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"user_id": "alice", "email": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
    ],
    ids=["arrays", "nested-array-value", "nested-objects"],
)
def test_deeply_nested_json_is_400(serve: Any, content: bytes) -> None:
    server = serve()
    with server.client() as client:
        response = client.post(INIT, content=content, headers={**server.headers("alice"), **JSON})
    body = assert_refused(response, 400, "bad_request")
    assert "nested" in body["message"]


@pytest.mark.parametrize(
    "content",
    [b'{"user_id": "al\xffice"}', b'{"user_id": "alice", "email": "a\xc3@example.com"}'],
    ids=["bad-start-byte", "truncated-sequence"],
)
def test_invalid_utf8_in_a_string_is_400(serve: Any, content: bytes) -> None:
    server = serve()
    with server.client() as client:
        response = client.post(INIT, content=content, headers={**server.headers("alice"), **JSON})
    body = assert_refused(response, 400, "bad_request")
    assert "UTF-8" in body["message"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_body_that_is_not_json_is_415(serve: Any, content_type: str | None) -> None:
    server = serve()
    headers = server.headers("alice")
    if content_type is not None:
        headers["Content-Type"] = content_type
    with server.client() as client:
        response = client.post(INIT, content=b'{"user_id": "alice"}', headers=headers)
        rollout = client.post(
            "/api/admin/rollouts", content=b"{}", headers={**server.headers("ops", admin=True)}
        )
    body = assert_refused(response, 415, "unsupported_media_type")
    assert "application/json" in body["message"]
    assert_refused(rollout, 415, "unsupported_media_type")


def test_json_with_a_charset_parameter_is_accepted(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        response = client.post(
            INIT,
            content=b'{"user_id": "alice"}',
            headers={**server.headers("alice"), "Content-Type": "application/json; charset=utf-8"},
        )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "email",
    ["al\x00ice@example.com", "alice@exa\x07mple.com", "al\x7fice@example.com", "a\x85@b.com"],
    ids=["nul", "bell", "delete", "c1-control"],
)
def test_an_email_with_control_characters_is_400(serve: Any, email: str) -> None:
    server = serve()
    response = server.initialize("alice", email)
    body = assert_refused(response, 400, "bad_request")
    assert "email" in body["message"]


def test_an_email_longer_than_254_characters_is_400(serve: Any) -> None:
    server = serve()
    longest = "a" * 64 + "@" + "b" * 185 + ".com"
    assert len(longest) == 254
    assert_refused(server.initialize("alice", longest + "x"), 400, "bad_request")
    assert server.initialize("alice", longest).status_code == 200


@pytest.mark.parametrize("before", ["99999999999999999999", str(INT64_MAX + 1), "0", "-1"])
def test_an_audit_cursor_out_of_range_is_400(serve: Any, before: str) -> None:
    server = serve()
    with server.client() as client:
        response = client.get(
            "/api/admin/audit", params={"before": before}, headers=server.headers("ops", admin=True)
        )
    body = assert_refused(response, 400, "bad_request")
    assert "before" in body["message"]


def test_the_largest_audit_cursor_is_accepted(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        response = client.get(
            "/api/admin/audit",
            params={"before": str(INT64_MAX)},
            headers=server.headers("ops", admin=True),
        )
    assert response.status_code == 200, response.text


def test_every_numeric_query_parameter_is_range_checked(serve: Any) -> None:
    """Each integer or number query parameter in the OpenAPI document has both bounds, and
    integers fit SQLite's INTEGER, so no value can overflow where it is used."""
    server = serve()
    with server.client() as client:
        document = client.get("/schema/openapi.json").json()
    numeric: list[tuple[str, dict[str, Any]]] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                # An optional parameter is oneOf [its type, null], with the bounds outside.
                branches = [schema, *schema.get("oneOf", [])]
                kinds = set()
                for branch in branches:  # "type" is a name or a list of names
                    kind = branch.get("type", [])
                    kinds |= {kind} if isinstance(kind, str) else set(kind)
                if parameter["in"] == "query" and kinds & {"integer", "number"}:
                    bounds = {k: v for b in branches for k, v in b.items() if k != "type"}
                    name = f"{method.upper()} {path} {parameter['name']}"
                    numeric.append((name, {**bounds, "integer": "integer" in kinds}))
    assert numeric, "the document lists no numeric query parameter: the walk above is broken"
    unbounded = [
        name
        for name, schema in numeric
        if "minimum" not in schema
        or "maximum" not in schema
        or (schema["integer"] and schema["maximum"] > INT64_MAX)
    ]
    assert unbounded == []

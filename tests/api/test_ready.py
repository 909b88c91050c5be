"""GET /ready over real HTTP: 200 when the registry is loaded and the catalog and backend
answer, 503 (JSON, no paths or counts) when one does not; no token needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import SECRET
from tests.sqld import SqldServer, make_keypair


def assert_not_ready(body: dict[str, Any], *, leaks: list[str]) -> None:
    assert set(body) == {"success", "message", "status_code", "code"}
    assert (body["success"], body["status_code"], body["code"]) == (False, 503, "not_ready")
    assert body["message"].startswith("not ready")
    for secret in leaks:
        assert secret not in body["message"]


def test_ready_when_everything_answers_without_a_token(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_not_ready_while_the_data_folder_is_gone(serve: Any, tmp_path: Path) -> None:
    server = serve()
    data = Path(server.settings.data_dir)
    moved = tmp_path / "moved"
    with server.client() as client:
        assert client.get("/ready").status_code == 200
        data.rename(moved)  # as when its volume is unmounted
        try:
            response = client.get("/ready")
        finally:
            moved.rename(data)
        assert response.status_code == 503
        assert_not_ready(response.json(), leaks=[str(data), str(tmp_path)])
        assert client.get("/ready").status_code == 200


@pytest.mark.sqld
def test_not_ready_when_sqld_is_down(serve: Any, tmp_path: Path) -> None:
    private, public = make_keypair(tmp_path, "sqld")
    sqld = SqldServer(tmp_path / "sqld", [public]).start()
    try:
        server = serve(
            backend="sqld",
            sqld_url=(sqld.url,),
            sqld_admin_url=(sqld.admin_url,),
            sqld_jwt_key_file=private,
            public_url_template=f"ws://{{namespace}}.localhost:{sqld.port}",
        )
        with server.client() as client:
            assert client.get("/ready").status_code == 200
            sqld.stop()
            response = client.get("/ready")
    finally:
        sqld.stop()
    assert response.status_code == 503
    assert_not_ready(response.json(), leaks=[sqld.url, str(sqld.port), SECRET])


def test_ready_is_public_in_the_openapi_document(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        document = client.get("/schema/openapi.json").json()
    operation = document["paths"]["/ready"]["get"]
    requirements = operation.get("security", document.get("security", []))
    assert requirements == [] or {} in requirements
    assert "503" in operation["responses"]

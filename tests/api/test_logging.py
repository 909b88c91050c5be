"""What the service logs: one event per request and per sync, never an email or a token."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs


def test_sync_and_request_events_carry_flat_fields_and_no_secrets(serve: Any) -> None:
    server = serve()
    token = server.token("lena")
    with capture_logs() as events:
        response = server.initialize("lena", "lena@example.com")
    assert response.status_code == 200
    sync = next(e for e in events if e["event"] == "schema.sync_applied")
    assert {k: v for k, v in sync.items() if k != "duration_ms"} == {
        "event": "schema.sync_applied",
        "log_level": "info",
        "user_id": "lena",
        "status": "applied",
        "created": True,
        "from_version": None,
        "to_version": "1.2.0",
        "changes_applied": 30,
        "drift_count": 0,
    }
    request = next(e for e in events if e["event"] == "request.completed")
    assert {k: request[k] for k in ("method", "path", "status", "user_id")} == {
        "method": "POST",
        "path": "/api/user/initialize",
        "status": 200,
        "user_id": "lena",
    }
    assert isinstance(request["duration_ms"], float)
    text = repr(events)
    assert "lena@example.com" not in text
    assert token not in text

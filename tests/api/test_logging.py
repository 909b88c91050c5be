"""What the service logs: one event per request and per sync, never an email or a token."""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from structlog.testing import capture_logs

import service.logs
from service.logs import FLUSH_SECONDS, REQUEST_ID, _Writer, configure_logging


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


def _wakeups(thread: threading.Thread) -> int:
    """How often the thread has gone to sleep and woken since it started (Linux)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def _written(stream: io.StringIO, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(lines := stream.getvalue().splitlines()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return lines


def test_the_log_writer_sleeps_until_a_line_waits_and_writes_every_line_in_order() -> None:
    stream = io.StringIO()
    writer = _Writer(stream)
    try:
        time.sleep(0.05)  # the thread has started and waits
        before = _wakeups(writer._thread)
        time.sleep(6 * FLUSH_SECONDS)  # nothing logged: a poller would have woken 6 times
        assert _wakeups(writer._thread) - before <= 1
        for i in range(3):
            writer.put(f"line {i}")
        assert _written(stream, 3) == ["line 0", "line 1", "line 2"]
        writer.put("line 3")  # a batch after the first one written wakes it again
        assert _written(stream, 4)[3] == "line 3"
        writer.put("line 4")
    finally:
        writer.close()  # writes what is queued at once
    assert stream.getvalue().splitlines()[-1] == "line 4"


def test_json_lines_carry_an_rfc3339_utc_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        configure_logging("json", "info")
        before = datetime.now(UTC)
        structlog.get_logger("tenantdb.test").info("test.stamped", n=1)
        after = datetime.now(UTC)
    finally:
        structlog.reset_defaults()
        assert service.logs._writer is not None
        service.logs._writer.close()  # writes the line now
    line = msgspec.json.decode(stream.getvalue().splitlines()[-1])
    assert line["event"] == "test.stamped"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", line["timestamp"])
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= stamped <= after


def test_lines_logged_while_a_request_runs_carry_its_id(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        configure_logging("json", "info")
        log = structlog.get_logger("tenantdb.test")
        log.info("test.outside")
        bound = REQUEST_ID.set("req-1")
        try:
            log.info("test.inside")
            log.info("test.own", request_id="req-2")  # an event naming its own id keeps it
        finally:
            REQUEST_ID.reset(bound)
        log.info("test.after")
    finally:
        structlog.reset_defaults()
        assert service.logs._writer is not None
        service.logs._writer.close()
    lines = [msgspec.json.decode(x) for x in stream.getvalue().splitlines()[-4:]]
    assert [(x["event"], x.get("request_id")) for x in lines] == [
        ("test.outside", None),
        ("test.inside", "req-1"),
        ("test.own", "req-2"),
        ("test.after", None),
    ]

"""What the service logs: one event per request and per sync, never an email or a token."""

from __future__ import annotations

import asyncio
import io
import os
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
from service.api.request_log import RequestCompleted
from service.logs import FLUSH_SECONDS, REQUEST_ID, _Pump, configure_logging, info_writer


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


def _lines_in(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(lines := path.read_text().splitlines()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return lines


def test_the_pump_writes_every_line_in_order_from_the_loop_and_from_threads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stderr"
    with path.open("w") as stream:
        pump = _Pump(stream, stream.fileno())

        async def on_the_loop() -> None:
            for i in range(3):
                pump.put(f"line {i}".encode())
            assert path.read_text() == ""  # queued: the loop wrote nothing itself
            await asyncio.sleep(2 * FLUSH_SECONDS)

        asyncio.run(on_the_loop())
        assert _lines_in(path, 3) == ["line 0", "line 1", "line 2"]
        off_the_loop = threading.Thread(target=pump.put, args=(b"line 3",))
        off_the_loop.start()
        off_the_loop.join()
        assert _lines_in(path, 4)[3] == "line 3"  # written at once, no loop to wait on
        pump.put(b"line 4")
        pump.close()  # writes what waits, and the pump finishes
    assert path.read_text().splitlines() == [f"line {i}" for i in range(5)]
    assert pump._child.poll() == 0


def test_a_stream_nobody_reads_never_holds_up_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pump blocks on a full stream; the loop keeps queuing, within a bound."""
    monkeypatch.setattr(service.logs, "MAX_PENDING_BYTES", 4 * 1024 * 1024)
    read, write = os.pipe()  # a reader that has stopped reading
    line = b"x" * 1000
    stream = os.fdopen(write, "w")
    pump = _Pump(stream, write)

    async def flood() -> float:
        slowest = 0.0
        for _ in range(20):  # 20 MB against ~1 MB of pipes and a 4 MB bound
            for _ in range(1000):
                pump.put(line)
            started = time.perf_counter()
            pump._flush_later()
            slowest = max(slowest, time.perf_counter() - started)
        return slowest

    assert asyncio.run(flood()) < 0.5  # a write that waited on the stream would hang
    assert 0 < len(pump._pending) <= 4 * 1024 * 1024 + len(line) + 1  # and the line in flight
    assert pump.dropped > 0
    stream.close()  # this end: the pump's child holds the stream open until it is done
    dropped = pump.dropped
    with os.fdopen(read, "rb") as reader:
        tail: list[bytes] = []
        reading = threading.Thread(target=lambda: tail.append(reader.read()))
        reading.start()  # the reader is back
        deadline = time.monotonic() + 10
        while pump._flush() and time.monotonic() < deadline:  # the pump catches up
            time.sleep(0.01)
        pump.close()
        reading.join()
    *lines, last = tail[0].splitlines()
    assert lines
    assert all(x == line for x in lines)  # whole lines only, the oldest gone
    said = msgspec.json.decode(last)
    assert (said["event"], said["level"], said["lines"]) == (
        "log.lines_dropped",
        "warning",
        dropped,
    )
    assert said["timestamp"].endswith("Z")


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
        service.logs._writer.close()
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


def _completed(**fields: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/api/user/initialize",
        "status": 200,
        "duration_ms": 1.25,
        "user_id": "lena",
        "pid": 7,
        **fields,
    }


def _logged_lines(fmt: str, level: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The request line written by info_writer and by structlog from the same fields, in
    one process configured as `serve` configures it."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        configure_logging(fmt, level)
        log = structlog.get_logger("tenantdb.test")
        bound = REQUEST_ID.set("req-1")
        try:
            write = info_writer(log)
            if write is not None:
                write(RequestCompleted(**_completed()))
            log.info("request.completed", **_completed())
        finally:
            REQUEST_ID.reset(bound)
    finally:
        structlog.reset_defaults()
        assert service.logs._writer is not None
        service.logs._writer.close()
    return stream.getvalue().splitlines()


def test_an_events_json_line_is_the_line_structlog_makes_of_its_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct, chained = _logged_lines("json", "info", monkeypatch)
    assert direct.startswith('{"event":"request.completed",')  # msgspec's, not the chain's
    ours, theirs = msgspec.json.decode(direct), msgspec.json.decode(chained)
    assert ours.pop("timestamp").endswith("Z")
    assert theirs.pop("timestamp").endswith("Z")
    assert (
        ours
        == theirs
        == {
            "event": "request.completed",
            "level": "info",
            "request_id": "req-1",
            **_completed(),
        }
    )


def test_events_go_through_structlog_on_a_terminal_and_not_at_all_below_their_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readable, chained = (
        re.sub(r"\x1b\[[0-9;]*m", "", x)  # without the terminal's colours
        for x in _logged_lines("console", "info", monkeypatch)
    )
    assert "request.completed" in readable
    assert "status=200" in readable
    assert "request_id=req-1" in readable
    assert readable.split(" ", 1)[1] == chained.split(" ", 1)[1]  # the same but the time
    assert info_writer(structlog.get_logger("tenantdb.test")) is not None  # defaults: info
    assert _logged_lines("json", "warning", monkeypatch) == []


def test_events_reach_structlogs_capture_in_tests() -> None:
    log = structlog.get_logger("tenantdb.test")
    with capture_logs() as events:
        write = info_writer(log)
        assert write is not None
        write(RequestCompleted(**_completed(), request_id="req-2"))
        write(RequestCompleted(**_completed()))
    assert events == [
        {"event": "request.completed", "log_level": "info", "request_id": "req-2", **_completed()},
        {"event": "request.completed", "log_level": "info", **_completed()},
    ]

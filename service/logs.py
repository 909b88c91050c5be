"""structlog, configured once: JSON lines off a terminal, readable lines on one.

Every event logged while a request runs carries its id (`REQUEST_ID`, set by the request
log middleware). Emails, tokens and secrets are never passed to a logger.

Lines reach stderr (a file, a pipe, a journal) through a pipe to a child process that
copies them (`_Pump`): the event loop renders an event, queues it and hands batches to the
pipe without ever waiting on the stream. The event logged on every request is an `Event`,
written in one msgspec call (`info_writer`) rather than through structlog's processors.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

import msgspec
import structlog

_encoder = msgspec.json.Encoder()
# The request being served, for every line logged while it runs: one ContextVar read per
# line (structlog's merge_contextvars walks every variable of the context, ~0.4 µs, and
# binding and clearing them cost ~0.7 µs a request where nothing is logged).
REQUEST_ID: Final[ContextVar[str | None]] = ContextVar("tenantdb_request_id", default=None)
# How long a line may wait before the event loop hands it to the pump: lines reach the
# stream in order, hundreds per write under load, and a clean stop writes the rest.
FLUSH_SECONDS = 0.05
# What may wait for a pump that has fallen behind, past its pipe's buffer: beyond it the
# oldest waiting lines are dropped (and counted), so logging never grows without bound.
MAX_PENDING_BYTES = 64 * 1024 * 1024
_PIPE_BYTES = 1024 * 1024  # asked of the kernel for the pipe (F_SETPIPE_SZ); it may give less
# The pump: copies its stdin (the pipe) to its stdout (the stream) until the pipe closes.
_COPY = (
    "import sys\n"
    "pipe, out = sys.stdin.buffer.raw, sys.stdout.buffer\n"
    "while chunk := pipe.read(1 << 20):\n"
    "    out.write(chunk)\n"
    "    out.flush()\n"
)


def _dumps(event: Any, **_: Any) -> bytes:
    return _encoder.encode(event)


class _Pump:
    """Lines to a stream with a file descriptor, through a pipe to a child process of
    this one that copies them to the stream.

    Neither the event loop nor any thread of this process waits on the stream until the
    process stops: a write to the pipe is non-blocking (a full pipe keeps the rest for the
    next flush, and lines past MAX_PENDING_BYTES are dropped, said in a line once the pump
    catches up). Not a thread: a thread must take the GIL from the event loop for every
    batch, and with uvloop giving the GIL up and taking it back on every loop iteration,
    CPython's switch rule never hands it over: the thread woke on each of those releases
    and slept again, for hundreds of milliseconds a batch (32 sign-ins in flight in one
    process, info level: 95 µs CPU a sign-in with the writer thread, 78 with the pump, 70
    without a line).

    On the event loop a line is queued and the first of a batch schedules the flush
    FLUSH_SECONDS later; off it (the CLI, worker threads) a line is written at once.
    """

    def __init__(self, stream: TextIO, fd: int) -> None:
        self._stream = stream
        read, write = os.pipe()
        with contextlib.suppress(OSError):  # a smaller pipe only flushes more often
            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self._child = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed program
            [sys.executable, "-I", "-S", "-c", _COPY],
            stdin=read,
            stdout=fd,
            start_new_session=True,  # a terminal's Ctrl-C stops the service, then the pump
        )
        os.close(read)
        os.set_blocking(write, False)
        self._fd = write
        self._lines: collections.deque[bytes] = collections.deque()
        self._pending = b""  # what the pipe did not take yet
        self._lock = threading.Lock()  # held across a non-blocking write only
        self._timer: asyncio.AbstractEventLoop | None = None  # the loop a flush waits on
        self.dropped = 0
        atexit.register(self.close)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def put(self, line: bytes) -> None:
        self._lines.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: this thread may wait
            self._flush()
            return
        if self._timer is not loop:  # the batch's first line on this loop
            self._timer = loop
            loop.call_later(FLUSH_SECONDS, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        if self._flush():  # the pipe is full: the rest goes with the next flush
            loop = asyncio.get_running_loop()
            self._timer = loop
            loop.call_later(FLUSH_SECONDS, self._flush_later)

    def _flush(self) -> bool:
        """Write what waits; True when some of it is still waiting (a full pipe)."""
        with self._lock:
            if self._fd < 0:
                return False
            data = self._pending + self._drain()
            if not data:
                return False
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0
            except OSError:  # the pump is gone: nowhere left to write
                written = len(data)
            self._pending = self._bounded(data[written:])
            if self.dropped and not self._pending:  # caught up: say what was lost
                self._lines.append(_dropped_line(self.dropped))
                self.dropped = 0
            return bool(self._pending)

    def _drain(self) -> bytes:
        batch: list[bytes] = []
        with contextlib.suppress(IndexError):  # popleft, not a copy: threads may append
            while True:
                batch.append(self._lines.popleft())
        return b"\n".join(batch) + b"\n" if batch else b""

    def _bounded(self, pending: bytes) -> bytes:
        """`pending` without its oldest whole lines past MAX_PENDING_BYTES behind its first
        line, which stays whole (the pipe may hold its start). Bounding it again drops
        nothing more."""
        head = pending.find(b"\n") + 1
        if len(pending) - head <= MAX_PENDING_BYTES:
            return pending
        cut = pending.index(b"\n", len(pending) - MAX_PENDING_BYTES) + 1
        self.dropped += pending.count(b"\n", head, cut)
        return pending[:head] + pending[cut:]

    def close(self) -> None:
        """Write what waits, then let the pump finish (at exit: a clean stop loses no line)."""
        with self._lock:
            if self._fd < 0:
                return
            data = self._pending + self._drain()
            os.set_blocking(self._fd, True)
            with contextlib.suppress(OSError):
                while data:
                    data = data[os.write(self._fd, data) :]
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._child.wait(timeout=5)


def _dropped_line(count: int) -> bytes:
    """The line saying `count` lines were dropped, as a JSON line of the service says it
    (made here: the writer cannot log through structlog, which writes through it)."""
    event = {"event": "log.lines_dropped", "lines": count, "level": "warning"}
    return _dumps(_stamp(None, "warning", event))


class _Direct:
    """Lines to a stream without a file descriptor (one in memory, as tests capture
    stderr): written at once, since such a write does not wait on a disk."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.closed = False

    def put(self, line: bytes) -> None:
        with contextlib.suppress(ValueError):  # a captured stream closed after its test
            self._stream.write(line.decode() + "\n")

    def close(self) -> None:
        self.closed = True


class _QueuedLogger:
    """structlog's logger interface, handing rendered lines to the process's writer."""

    def __init__(self, writer: _Pump | _Direct) -> None:
        self._writer = writer

    def msg(self, message: str | bytes) -> None:
        # JSON lines come as bytes (_dumps), a terminal's readable lines as text
        self._writer.put(message if isinstance(message, bytes) else message.encode())

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


_writer: _Pump | _Direct | None = None
# The processors configure_logging set up for JSON lines, which info_writer's lines match;
# None when it set up a terminal's readable lines.
_json_chain: tuple[Any, ...] | None = None


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog for the process; `fmt` is auto, json or console."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json_lines
        else structlog.dev.ConsoleRenderer()
    )
    global _json_chain  # noqa: PLW0603 - what this process's logging renders
    processors = [
        _request_id,
        structlog.processors.add_log_level,
        _stamp if json_lines else structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if json_lines else _keep,
        renderer,
    ]
    _json_chain = tuple(processors) if json_lines else None
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_: _QueuedLogger(_writer_for(sys.stderr)),
        cache_logger_on_first_use=True,
    )
    _writer_for(sys.stderr)  # now, at the start: the pump's start waits for its exec, once


def _writer_for(stream: TextIO) -> _Pump | _Direct:
    """The process's writer for `stream`: made when logging is configured, before any
    request is served, and again if the stream changes (tests swap stderr)."""
    global _writer  # noqa: PLW0603 - one writer per process
    if _writer is None or _writer.closed or _writer._stream is not stream:
        if _writer is not None:
            _writer.close()
        try:
            fd = stream.fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            _writer = _Direct(stream)
        else:
            stream.flush()  # what was written to it directly comes first
            _writer = _Pump(stream, fd)
    return _writer


def _request_id(_: Any, __: str, event: Any) -> Any:
    """The id of the request being served, unless the event names one itself."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _now() -> datetime:
    """The time of a JSON line: a datetime, which msgspec writes as RFC 3339 with a Z."""
    return datetime.now(UTC)


def _stamp(_: Any, __: str, event: Any) -> Any:
    """The time as a datetime, which msgspec writes as RFC 3339 in UTC with a Z, as
    structlog's ISO stamper does (`2026-11-27T16:44:09.963708Z`), without formatting it
    in Python: ~1.2 of ~5 µs per line (bench/README, api)."""
    event["timestamp"] = _now()
    return event


def _keep(_: Any, __: str, event: Any) -> Any:
    return event


class Event(msgspec.Struct, kw_only=True, tag_field="event"):
    """An info-level event with declared fields, for what is logged on every request: as
    a JSON line it is the line structlog's processors make of the same fields (its tag is
    the event's name), encoded in one msgspec call. structlog's chain costs ~2.6 µs more a
    line, ~7 µs of CPU a sign-in under load (bench/README, api)."""

    request_id: str | None = msgspec.field(default_factory=REQUEST_ID.get)
    level: Literal["info"] = "info"
    timestamp: datetime = msgspec.field(default_factory=_now)


def info_writer(logger: Any) -> Callable[[Event], None] | None:
    """How to log Events through `logger` as logging is set up now: None when the info level
    is off, one msgspec call when configure_logging set up JSON lines (and they are still
    what structlog renders), else `logger` and its processors (a terminal's readable lines,
    tests' capture_logs). Asked once, when a server starts serving, not per event."""
    if not logger.is_enabled_for(logging.INFO):
        return None
    if _json_chain is not None and tuple(structlog.get_config()["processors"]) == _json_chain:
        put = _writer_for(sys.stderr).put
        encode = _encoder.encode

        def write(event: Event) -> None:
            put(encode(event))

        return write

    def through_structlog(event: Event) -> None:
        fields = msgspec.structs.asdict(event)
        del fields["level"], fields["timestamp"]  # the processors add these
        if fields["request_id"] is None:  # and this one, when a request is being served
            del fields["request_id"]
        logger.info(type(event).__struct_config__.tag, **fields)

    return through_structlog

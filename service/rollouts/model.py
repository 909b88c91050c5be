"""Fleet rollout jobs as values: a job's row, its counts, the tenants it could not bring to
its target, its progress and its summary.

A job's `cursor` is a low-water mark: every tenant whose user id sorts at or below it is
done and counted, so a resumed job starts after it.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import Final, Literal

import msgspec

from service.drift import DriftItem
from service.errors import Conflict
from service.status import RolloutOutcome

# halted: a wave failed above the job's limit; it waits for `--resume`.
JobState = Literal["running", "finished", "cancelled", "failed", "halted"]
WaveState = Literal["pending", "running", "passed", "halted"]
LEASE_SECONDS: Final = 15.0  # a run renews its lease with every progress save


class TenantIssue(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant a rollout could not bring to its target: failed (an error) or drifted."""

    user_id: str
    kind: Literal["failed", "drifted"]
    from_version: str | None
    reason: str
    drift: tuple[DriftItem, ...] = ()


class TenantChange(msgspec.Struct, frozen=True, kw_only=True):
    """What a job did to one tenant, kept so a restore can undo it: the stamp the sync
    left (a later change moves it) and the backup taken before (None: none was)."""

    user_id: str
    outcome: RolloutOutcome
    wave: int | None = None  # index into the job's waves
    from_version: str | None = None
    to_version: str | None = None
    content_hash: str | None = None
    schema_cookie: int | None = None
    backup: str | None = None
    restored_at: str | None = None


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """A job's plan beyond its row: waves (cumulative percentages of its tenants), the
    failure rate of a wave that halts it, who goes first, and backups before changes."""

    waves: tuple[int, ...] = ()
    max_failure_rate: float | None = None  # a fraction: 0.02 is 2 %
    first: tuple[str, ...] = ()
    backup: bool = False


class WaveCounts(msgspec.Struct, frozen=True, kw_only=True):
    """One wave of a job: up to which percentage of the tenants, how many, what happened."""

    wave: int  # 1-based
    percent: int
    tenants: int
    done: int
    upgraded: int
    current: int
    would_apply: int
    failed: int
    drifted: int
    failure_rate: float  # (failed + drifted) / done
    state: WaveState


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    upgraded: int = 0
    current: int = 0
    would_apply: int = 0
    failed: int = 0
    drifted: int = 0

    @property
    def done(self) -> int:
        return self.upgraded + self.current + self.would_apply + self.failed + self.drifted


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A rollout job's row: what it targets, how far it got, and its counts so far."""

    job_id: str
    target: str
    dry_run: bool
    concurrency: int
    actor: str | None
    state: JobState
    started_at: str
    updated_at: str
    finished_at: str | None = None
    cursor: str | None = None  # every tenant with user_id <= cursor is done and counted
    total: int = 0
    counts: Counts = Counts()
    seconds: float = 0.0  # time spent running, over every run of the job
    error: str | None = None
    owner: str | None = None  # the run holding the job's lease
    lease_until: float = 0.0  # unix time; another run may take the job after it
    backup: bool = False  # from the job's plan (not its row): a backup before every change

    @property
    def leased(self) -> bool:
        """A live run holds the job (it saves progress at least every few seconds); a
        run of this machine whose process is gone (killed) holds nothing."""
        return (
            self.owner is not None and self.lease_until > time.time() and not owner_gone(self.owner)
        )


def run_owner() -> str:
    """An id for one run of a job: the machine and process it runs in, and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_gone(owner: str) -> bool:
    """Whether `owner` (a `run_owner`) ran on this machine in a process that has exited."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: does it exist?
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


class LeaseLost(Conflict):
    """Another run has taken the job (this one stopped saving progress for too long)."""


class Progress(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="progress"):
    """Where a running job is: counts so far, and this run's speed."""

    job_id: str
    state: JobState
    target: str
    dry_run: bool
    total: int
    done: int
    upgraded: int
    current: int
    would_apply: int
    failed: int
    drifted: int
    rate: float  # tenants per second in this run
    elapsed_s: float  # this run


class RolloutSummary(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="summary"):
    """A job's counts and every tenant it could not bring to the target, with the reason."""

    job_id: str
    state: JobState
    target: str
    dry_run: bool
    concurrency: int
    started_at: str
    updated_at: str
    finished_at: str | None
    total: int
    done: int
    upgraded: int
    current: int  # already at the target
    would_apply: int  # dry run: a sync would change these
    failed: tuple[TenantIssue, ...]
    drifted: tuple[TenantIssue, ...]
    seconds: float  # time spent running, over every run of the job
    rate: float  # tenants per second, over every run of the job
    error: str | None = None
    waves: tuple[WaveCounts, ...] = ()
    max_failure_rate: float | None = None

    @property
    def ok(self) -> bool:
        """Finished, and every tenant is at the target (or would be, in a dry run)."""
        return self.state == "finished" and not self.failed and not self.drifted


def summarize(
    job: Job,
    issues: list[TenantIssue],
    *,
    plan: Plan | None = None,
    waves: tuple[WaveCounts, ...] = (),
) -> RolloutSummary:
    c = job.counts
    return RolloutSummary(
        job_id=job.job_id,
        state=job.state,
        target=job.target,
        dry_run=job.dry_run,
        concurrency=job.concurrency,
        started_at=job.started_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
        total=job.total,
        done=c.done,
        upgraded=c.upgraded,
        current=c.current,
        would_apply=c.would_apply,
        failed=tuple(i for i in issues if i.kind == "failed"),
        drifted=tuple(i for i in issues if i.kind == "drifted"),
        seconds=round(job.seconds, 3),
        rate=round(c.done / job.seconds, 1) if job.seconds else 0.0,
        error=job.error,
        waves=waves,
        max_failure_rate=plan.max_failure_rate if plan is not None else None,
    )

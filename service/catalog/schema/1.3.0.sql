-- A tenant's status is what cannot be derived from the registry: provisioned, synced
-- (at schema_version, which is current or behind as the registry says when asked),
-- drifted or failed.

-- One row per tenant: where its database is and the stamp of its newest history row.
CREATE TABLE tenants (
    user_id TEXT PRIMARY KEY,
    email TEXT,
    location TEXT NOT NULL,
    created_at TEXT NOT NULL,
    schema_version TEXT,
    content_hash TEXT,
    schema_cookie INTEGER,
    last_sync_at TEXT,
    status TEXT NOT NULL DEFAULT 'provisioned',
    drift_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX tenants_by_version ON tenants (schema_version);
CREATE INDEX tenants_by_status ON tenants (status);

-- One row per applied change set: who asked, from and to, and the SQL.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    actor TEXT,
    from_version TEXT,
    to_version TEXT NOT NULL,
    status TEXT NOT NULL,
    changes_applied INTEGER NOT NULL,
    statements TEXT NOT NULL,
    statements_digest TEXT
);
CREATE INDEX audit_by_user ON audit_log (user_id, id);

-- Each distinct list of statements once, by its digest: a plan is the same for thousands of
-- tenants, so an audit entry names its list (audit_log.statements_digest) instead of
-- holding a copy. Entries made before keep theirs in audit_log.statements.
CREATE TABLE statement_lists (
    digest TEXT PRIMARY KEY,
    statements TEXT NOT NULL
) WITHOUT ROWID;

-- One row per fleet rollout job, with its counts and the lease of the run holding it.
CREATE TABLE rollouts (
    job_id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    actor TEXT,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    cursor TEXT,
    total INTEGER NOT NULL,
    upgraded INTEGER NOT NULL DEFAULT 0,
    current INTEGER NOT NULL DEFAULT 0,
    would_apply INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    drifted INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    error TEXT,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX rollouts_by_start ON rollouts (started_at);

-- One row per tenant a job could not bring to its target (failed or drifted).
CREATE TABLE rollout_issues (
    job_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_version TEXT,
    reason TEXT NOT NULL,
    drift TEXT NOT NULL,
    PRIMARY KEY (job_id, user_id)
) WITHOUT ROWID;

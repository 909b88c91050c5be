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
-- Catalog 1.5.0: a tenant's status and version together, so that a listing of one status at
-- one version (current, out of date, ahead) reads its page in user id order from the index,
-- however many tenants are elsewhere, and the versions present are found without a scan.
CREATE INDEX tenants_by_status_version ON tenants (status, schema_version);

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

-- A rollout job's plan beyond its row (catalog 1.4.0): the waves it goes in (cumulative
-- percentages, JSON), the failure rate that halts it after a wave, the tenants that go
-- first (JSON), and whether it backs up each tenant before changing it.
CREATE TABLE rollout_plans (
    job_id TEXT PRIMARY KEY,
    waves TEXT NOT NULL,
    max_failure_rate REAL,
    first_users TEXT NOT NULL,
    backup INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One row per tenant a job changed (and, in a job with waves, per tenant it did): its wave,
-- what the sync did, the stamp it left (so a restore can tell a tenant changed again since)
-- and the backup taken before the change (so a restore can find it).
CREATE TABLE rollout_tenants (
    job_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    wave INTEGER,
    outcome TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    content_hash TEXT,
    schema_cookie INTEGER,
    backup TEXT,
    restored_at TEXT,
    PRIMARY KEY (job_id, user_id)
) WITHOUT ROWID;

-- Tenants per version ('none': never synced) and stored status (catalog 1.5.0), kept by the
-- triggers below as tenant rows are written: health, metrics and a rollout's start read these
-- few rows instead of counting the whole table, so what they cost does not grow with the
-- fleet. Rows at 0 stay (a few per version).
CREATE TABLE tenant_counts (
    schema_version TEXT NOT NULL,
    status TEXT NOT NULL,
    tenants INTEGER NOT NULL,
    PRIMARY KEY (schema_version, status)
) WITHOUT ROWID;

-- A tenant's row is written with INSERT OR REPLACE, whose delete of the row it replaces
-- fires no DELETE trigger (recursive_triggers is off): that row leaves its count first.
CREATE TRIGGER tenant_counts_replace BEFORE INSERT ON tenants BEGIN
    UPDATE tenant_counts SET tenants = tenants - 1
    WHERE (schema_version, status) = (
        SELECT coalesce(schema_version, 'none'), status FROM tenants WHERE user_id = NEW.user_id
    );
END;

CREATE TRIGGER tenant_counts_insert AFTER INSERT ON tenants BEGIN
    INSERT INTO tenant_counts (schema_version, status, tenants)
    VALUES (coalesce(NEW.schema_version, 'none'), NEW.status, 1)
    ON CONFLICT (schema_version, status) DO UPDATE SET tenants = tenants + 1;
END;

CREATE TRIGGER tenant_counts_delete AFTER DELETE ON tenants BEGIN
    UPDATE tenant_counts SET tenants = tenants - 1
    WHERE schema_version = coalesce(OLD.schema_version, 'none') AND status = OLD.status;
END;

CREATE TRIGGER tenant_counts_update AFTER UPDATE OF schema_version, status ON tenants BEGIN
    UPDATE tenant_counts SET tenants = tenants - 1
    WHERE schema_version = coalesce(OLD.schema_version, 'none') AND status = OLD.status;
    INSERT INTO tenant_counts (schema_version, status, tenants)
    VALUES (coalesce(NEW.schema_version, 'none'), NEW.status, 1)
    ON CONFLICT (schema_version, status) DO UPDATE SET tenants = tenants + 1;
END;

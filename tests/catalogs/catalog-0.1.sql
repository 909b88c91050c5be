-- A catalog made by tenantdb 0.1 (before the catalog had a registry), dumped with
-- sqlite3's iterdump: tenants in every stored status, audit entries, a finished rollout.
BEGIN TRANSACTION;
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
    statements TEXT NOT NULL
);
INSERT INTO "audit_log" VALUES(1,'2026-11-02T00:00:00Z','ann','sign-in','ann',NULL,'1.2.0','applied',3,'["CREATE TABLE a (x)"]');
INSERT INTO "audit_log" VALUES(2,'2026-11-02T00:00:00Z','ben','sign-in','ben',NULL,'1.1.0','applied',3,'["CREATE TABLE a (x)"]');
INSERT INTO "audit_log" VALUES(3,'2026-11-02T00:00:00Z','cal','sign-in','cal',NULL,'1.1.0','applied',3,'["CREATE TABLE a (x)"]');
INSERT INTO "audit_log" VALUES(4,'2026-11-02T00:00:00Z','dee','sign-in','dee',NULL,'1.0.0','applied',3,'["CREATE TABLE a (x)"]');
CREATE TABLE rollout_issues (
    job_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_version TEXT,
    reason TEXT NOT NULL,
    drift TEXT NOT NULL,
    PRIMARY KEY (job_id, user_id)
) WITHOUT ROWID;
INSERT INTO "rollout_issues" VALUES('job1','cal','drifted','1.1.0','t: x','[]');
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
INSERT INTO "rollouts" VALUES('job1','1.2.0',0,8,'ops','finished','2026-11-03T00:00:00Z','2026-11-03T00:01:00Z','2026-11-03T00:01:00Z','eve',5,1,1,0,1,1,1.5,NULL,NULL,0.0);
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
INSERT INTO "tenants" VALUES('ann','ann@example.com','/old/data/tenants/ab/cd/ann.db','2026-11-01T00:00:00Z','1.2.0','h1.2.0',7,'2026-11-02T00:00:00Z','current',0);
INSERT INTO "tenants" VALUES('ben','ben@example.com','/old/data/tenants/ab/cd/ben.db','2026-11-01T00:00:00Z','1.1.0','h1.1.0',7,'2026-11-02T00:00:00Z','out_of_date',0);
INSERT INTO "tenants" VALUES('cal','cal@example.com','/old/data/tenants/ab/cd/cal.db','2026-11-01T00:00:00Z','1.1.0','h1.1.0',7,'2026-11-02T00:00:00Z','drifted',2);
INSERT INTO "tenants" VALUES('dee','dee@example.com','/old/data/tenants/ab/cd/dee.db','2026-11-01T00:00:00Z','1.0.0','h1.0.0',7,'2026-11-02T00:00:00Z','failed',0);
INSERT INTO "tenants" VALUES('eve','eve@example.com','/old/data/tenants/ab/cd/eve.db','2026-11-01T00:00:00Z',NULL,NULL,NULL,'2026-11-02T00:00:00Z','provisioned',0);
CREATE INDEX tenants_by_version ON tenants (schema_version);
CREATE INDEX audit_by_user ON audit_log (user_id, id);
CREATE INDEX rollouts_by_start ON rollouts (started_at);
COMMIT;

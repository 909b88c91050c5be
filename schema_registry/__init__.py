"""tenantdb's schema engine: a versioned registry of SQLite schemas, and the sync that
brings a database to one of its versions.

This is the engine's public surface: callers import from `schema_registry`, never from
its modules, so the modules may move and split without touching them. Names keep their
module's spelling, except where the module gave the context: `history.newest` is
`newest_history` here, `history.record_statements` is `record_history_statements`.

The stages, bottom up. Each module imports only modules of the stages below it, never a
name from this file:

    database, sqltext, clock, errors, lru   the database interface, SQL text, small helpers
    sqlite_db                               that interface over a local SQLite file
    model, changes                          schemas and their differences, as values
    history                                 the version table each database carries
    introspect                              a live database's user schema
    diff, plan                              what differs, and what may run
    rebuild                                 a generated migration script (12-step rebuilds)
    registry                                the versions, compiled from their folder
    sync                                    one database to one version
"""

from schema_registry.changes import (
    AddColumn,
    Additive,
    AlterColumn,
    AlterTable,
    AnyChange,
    Change,
    ColumnOrder,
    CreateIndex,
    CreateTable,
    CreateTrigger,
    CreateView,
    Extra,
    ReplaceIndex,
    ReplaceTrigger,
    ReplaceView,
    RunScript,
    Step,
    UnreadableHistory,
    step_statements,
)
from schema_registry.clock import utc_now
from schema_registry.database import Database, Row, Session, Transaction, Value
from schema_registry.diff import dependency_order, diff
from schema_registry.errors import (
    HistoryRowUnreadable,
    NewerDatabaseError,
    RegistryError,
    SchemaRegistryError,
    StatementFailed,
    SyncError,
)
from schema_registry.history import HISTORY_DDL, HISTORY_TABLE, HistoryRow, Stamp, read_history
from schema_registry.history import newest as newest_history
from schema_registry.history import record_statements as record_history_statements
from schema_registry.introspect import introspect
from schema_registry.model import Column, ForeignKey, Index, Schema, Table, Trigger, View
from schema_registry.plan import Plan, Refusal, add_column_refusal, make_plan
from schema_registry.rebuild import (
    BadDecision,
    Decisions,
    GenerationFailed,
    Migration,
    MigrationRefused,
    Undecided,
    generate_migration,
    needs_migration,
    parse_decisions,
)
from schema_registry.registry import (
    EXAMPLE,
    Registry,
    RegistryFile,
    Version,
    compile_schema,
    load_registry,
    version_key,
)
from schema_registry.sqlite_db import SqliteDatabase, connect, drive
from schema_registry.sqltext import fold, quote, split_statements
from schema_registry.sync import SyncContext, SyncResult, check, is_current, sync

__all__ = [
    "EXAMPLE",
    "HISTORY_DDL",
    "HISTORY_TABLE",
    "AddColumn",
    "Additive",
    "AlterColumn",
    "AlterTable",
    "AnyChange",
    "BadDecision",
    "Change",
    "Column",
    "ColumnOrder",
    "CreateIndex",
    "CreateTable",
    "CreateTrigger",
    "CreateView",
    "Database",
    "Decisions",
    "Extra",
    "ForeignKey",
    "GenerationFailed",
    "HistoryRow",
    "HistoryRowUnreadable",
    "Index",
    "Migration",
    "MigrationRefused",
    "NewerDatabaseError",
    "Plan",
    "Refusal",
    "Registry",
    "RegistryError",
    "RegistryFile",
    "ReplaceIndex",
    "ReplaceTrigger",
    "ReplaceView",
    "Row",
    "RunScript",
    "Schema",
    "SchemaRegistryError",
    "Session",
    "SqliteDatabase",
    "Stamp",
    "StatementFailed",
    "Step",
    "SyncContext",
    "SyncError",
    "SyncResult",
    "Table",
    "Transaction",
    "Trigger",
    "Undecided",
    "UnreadableHistory",
    "Value",
    "Version",
    "View",
    "add_column_refusal",
    "check",
    "compile_schema",
    "connect",
    "dependency_order",
    "diff",
    "drive",
    "fold",
    "generate_migration",
    "introspect",
    "is_current",
    "load_registry",
    "make_plan",
    "needs_migration",
    "newest_history",
    "parse_decisions",
    "quote",
    "read_history",
    "record_history_statements",
    "split_statements",
    "step_statements",
    "sync",
    "utc_now",
    "version_key",
]

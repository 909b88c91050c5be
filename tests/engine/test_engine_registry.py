"""Loading a registry folder: what it validates, and the message naming file, version, object."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schema_registry import EXAMPLE, RegistryError, load_registry
from tests.engine.enginekit import SEED000, V, make_registry, write_registry

TRADES = """CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE trades (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    symbol TEXT NOT NULL,
    fee REAL NOT NULL DEFAULT 0
);
CREATE INDEX ix_trades_symbol ON trades(symbol);
CREATE VIEW v_fees AS SELECT account_id, sum(fee) AS fees FROM trades GROUP BY account_id;
CREATE TRIGGER trg_no_negative_fee BEFORE INSERT ON trades WHEN NEW.fee < 0
BEGIN SELECT RAISE(ABORT, 'negative fee'); END;
"""


# TRADES without trades.fee, and without the view and trigger that use it (the loader
# refuses a view or trigger that does not run).
WITHOUT_FEE = TRADES.replace(",\n    fee REAL NOT NULL DEFAULT 0", "").split("CREATE VIEW")[0]


def failure(root: Path, *versions: V) -> str:
    with pytest.raises(RegistryError) as caught:
        make_registry(root, *versions)
    return str(caught.value)


def test_example_registry_loads_with_three_versions_and_distinct_hashes() -> None:
    registry = load_registry(EXAMPLE)

    assert [v.version for v in registry.versions] == ["1.0.0", "1.1.0", "1.2.0"]
    assert len({v.content_hash for v in registry.versions}) == 3
    assert all(v.content_hash == v.schema.fingerprint() for v in registry.versions)
    assert registry.current.optional == ("rate_limit_violations",)
    assert [v.version for v in registry.passed("1.0.0", "1.2.0")] == ["1.1.0", "1.2.0"]


def test_seed000_registry_loads_27_tables() -> None:
    registry = load_registry(SEED000)

    assert len(registry.current.schema.tables) == 27


@pytest.mark.parametrize(
    ("sql", "sqlite_says"),
    [
        ("CREATE TABLE t (id INTEGER PRIMARY KEY,);", 'near ")": syntax error'),
        ("CREATE INDEX ix ON missing(a);", "no such table: main.missing"),
        ("CREATE TABLE t (a); CREATE TABLE T (b);", "table T already exists"),
        ("CREATE TABLE t (a INTEGER, a TEXT);", "duplicate column name: a"),
        ("CREATE TABLE s (a FLOAT) STRICT;", 'unknown datatype for s.a: "FLOAT"'),
    ],
    ids=["syntax", "missing-table", "duplicate-table", "duplicate-column", "strict-type"],
)
def test_sql_that_does_not_load_names_file_version_and_sqlite_message(
    tmp_path: Path, sql: str, sqlite_says: str
) -> None:
    root = tmp_path / "registry"

    message = failure(root, V("1.0.0", TRADES), V("1.1.0", TRADES + sql))

    assert message == f"{root / '1.1.0.sql'} (version 1.1.0): SQLite refused it: {sqlite_says}"


@pytest.mark.parametrize(
    ("versions", "problem"),
    [
        (["1.1.0", "1.0.0"], "version 1.0.0 comes after 1.1.0; versions must increase strictly"),
        (
            ["1.0.0", "1.2.0", "1.10.0", "1.9.0"],
            "version 1.9.0 comes after 1.10.0; versions must increase strictly",
        ),
        (["1.0.0", "1.0.0"], "version 1.0.0 is listed twice"),
        (
            ["1.0.0", "1.1.0", "1.0.0"],
            "version 1.0.0 comes after 1.1.0; versions must increase strictly",
        ),
        (["1.0"], "'1.0' is not a MAJOR.MINOR.PATCH version"),
        (["v1.0.0"], "'v1.0.0' is not a MAJOR.MINOR.PATCH version"),
        (["1.01.0"], "'1.01.0' is not a MAJOR.MINOR.PATCH version"),
    ],
    ids=[
        "decreasing",
        "numeric-not-lexical",
        "duplicate",
        "duplicate-later",
        "two-parts",
        "prefix",
        "leading-zero",
    ],
)
def test_versions_must_be_semver_and_strictly_increasing(
    tmp_path: Path, versions: list[str], problem: str
) -> None:
    root = tmp_path / "registry"

    message = failure(root, *(V(v, TRADES) for v in versions))

    assert message == f"{root / 'registry.toml'}: {problem}"


def test_versions_compare_numerically(tmp_path: Path) -> None:
    registry = make_registry(
        tmp_path / "registry", *(V(v, TRADES) for v in ["1.2.0", "1.10.0", "2.0.0"])
    )

    assert [v.version for v in registry.versions] == ["1.2.0", "1.10.0", "2.0.0"]


NOT_ADDITIVE = [
    (
        TRADES.replace(
            "fee REAL NOT NULL DEFAULT 0", "fee REAL NOT NULL DEFAULT 0 CHECK (fee >= 0)"
        ),
        "table trades differs: missing CHECK (fee >= 0) (not additive: needs a migration)",
    ),
    (WITHOUT_FEE, "drops column trades.fee (and 2 more)"),
    (
        TRADES.replace(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n", ""
        ).replace(" REFERENCES accounts(id)", ""),
        "table trades differs: unexpected foreign key (account_id) -> accounts "
        "(not additive: needs a migration) (and 1 more)",
    ),
    (
        TRADES.replace("fee REAL NOT NULL", "fee TEXT NOT NULL"),
        "column trades.fee differs: expected TEXT NOT NULL DEFAULT 0, "
        "found REAL NOT NULL DEFAULT 0 (not additive: needs a migration)",
    ),
    (
        TRADES.replace("ON trades(symbol)", "ON trades(symbol, fee)"),
        "index ix_trades_symbol has another definition: CREATE INDEX ix_trades_symbol ON "
        "trades(symbol) (not additive: needs a migration)",
    ),
    (
        TRADES.replace("CREATE INDEX ix_trades_symbol ON trades(symbol);\n", ""),
        "drops index ix_trades_symbol",
    ),
    (
        TRADES.replace("sum(fee)", "total(fee)"),
        "view v_fees has another definition (not additive: needs a migration)",
    ),
    (
        TRADES.replace("WHEN NEW.fee < 0", "WHEN NEW.fee <= 0"),
        "trigger trg_no_negative_fee has another definition (not additive: needs a migration)",
    ),
    (
        TRADES.replace(
            "fee REAL NOT NULL DEFAULT 0", "fee REAL NOT NULL DEFAULT 0,\n    venue TEXT NOT NULL"
        ),
        "add column trades.venue: venue TEXT NOT NULL "
        "(SQLite cannot add a NOT NULL column without a non-NULL default)",
    ),
]


@pytest.mark.parametrize(
    ("sql", "problem"),
    NOT_ADDITIVE,
    ids=[
        "changes-check",
        "drops-column",
        "drops-referenced-table",
        "changes-column",
        "changes-index",
        "drops-index",
        "changes-view",
        "changes-trigger",
        "unaddable-column",
    ],
)
def test_version_that_is_not_additive_needs_a_migration(
    tmp_path: Path, sql: str, problem: str
) -> None:
    root = tmp_path / "registry"

    message = failure(root, V("1.1.0", TRADES), V("1.2.0", sql))

    assert message == (
        f"1.2.0.sql (version 1.2.0) is not additive to 1.1.0: {problem}: "
        "keep the old definition, or add a migration"
    )


def test_dropping_a_table_names_it(tmp_path: Path) -> None:
    sql = TRADES + "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n"

    message = failure(tmp_path / "registry", V("1.0.0", sql), V("1.1.0", TRADES))

    assert message == (
        "1.1.0.sql (version 1.1.0) is not additive to 1.0.0: drops table notes: "
        "keep the old definition, or add a migration"
    )


def test_each_problem_is_counted_in_the_message(tmp_path: Path) -> None:
    sql = (
        TRADES.replace(",\n    fee REAL NOT NULL DEFAULT 0", "")
        .replace("sum(fee)", "count(*)")
        .replace("NEW.fee < 0", "NEW.symbol = ''")
    )

    message = failure(tmp_path / "registry", V("1.0.0", TRADES), V("1.1.0", sql))

    assert message == (
        "1.1.0.sql (version 1.1.0) is not additive to 1.0.0: view v_fees has another "
        "definition (not additive: needs a migration) (and 2 more): keep the old definition, "
        "or add a migration"
    )


def test_non_additive_version_with_a_migration_loads(tmp_path: Path) -> None:
    script = (
        "DROP VIEW v_fees;\nDROP TRIGGER trg_no_negative_fee;\nALTER TABLE trades DROP COLUMN fee;"
    )

    registry = make_registry(
        tmp_path / "registry", V("1.0.0", TRADES), V("1.1.0", WITHOUT_FEE, migration=script)
    )

    assert registry.current.migration == (
        "DROP VIEW v_fees;",
        "DROP TRIGGER trg_no_negative_fee;",
        "ALTER TABLE trades DROP COLUMN fee;",
    )


def test_additive_version_loads(tmp_path: Path) -> None:
    sql = (
        TRADES.replace(
            "fee REAL NOT NULL DEFAULT 0", "fee REAL NOT NULL DEFAULT 0,\n    venue TEXT"
        )
        + "CREATE TABLE notes (id INTEGER PRIMARY KEY);\nCREATE INDEX ix_venue ON trades(venue);\n"
    )

    registry = make_registry(tmp_path / "registry", V("1.0.0", TRADES), V("1.1.0", sql))

    assert [t.name for t in registry.current.schema.tables] == ["accounts", "trades", "notes"]


def test_optional_table_must_be_in_the_schema(tmp_path: Path) -> None:
    root = tmp_path / "registry"

    message = failure(root, V("1.0.0", TRADES, optional=("rate_limit_violations",)))

    assert message == (
        f"{root / '1.0.0.sql'} (version 1.0.0): optional table rate_limit_violations "
        "is not in the schema"
    )


def test_missing_schema_and_migration_files_are_named(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "registry", [V("1.0.0", TRADES, migration="SELECT 1;")])
    (root / "1.0.0.migrate.sql").unlink()

    with pytest.raises(
        RegistryError,
        match=re.escape(f"{root / '1.0.0.migrate.sql'} (version 1.0.0): no such file"),
    ):
        load_registry(root)
    (root / "1.0.0.sql").unlink()
    with pytest.raises(
        RegistryError, match=re.escape(f"{root / '1.0.0.sql'} (version 1.0.0): no such file")
    ):
        load_registry(root)


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        (None, "no such file (a registry is a folder with registry.toml)"),
        ("versions = []\n", "lists no [[versions]]"),
        ("[[versions]]\nversion = '1.0.0'\n", "Object missing required field `description`"),
        (
            "[[versions]]\nversion = '1.0.0'\ndescription = 'd'\ncreated_at = 'x'\n"
            "schema = '1.0.0.sql'\nschema_file = 'y'\n",
            "Object contains unknown field `schema_file`",
        ),
        ("[[versions]\n", "Expected ']]' at the end of an array declaration"),
    ],
    ids=["missing", "empty", "missing-field", "unknown-field", "bad-toml"],
)
def test_registry_toml_problems_are_named(tmp_path: Path, toml: str | None, problem: str) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    if toml is not None:
        (root / "registry.toml").write_text(toml, encoding="utf-8")

    with pytest.raises(RegistryError) as caught:
        load_registry(root)

    assert str(caught.value).startswith(f"{root / 'registry.toml'}: {problem}")

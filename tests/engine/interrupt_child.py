"""Child process of the interruption test: sync one database to a registry's current version.

Usage: python interrupt_child.py DATABASE REGISTRY. Prints "ready" once the registry is loaded
and the database open, so the parent's kill lands inside the sync itself, then the status.
"""

from __future__ import annotations

import sys

from schema_registry import SqliteDatabase, drive, load_registry, sync


def main(database: str, registry_path: str) -> None:
    registry = load_registry(registry_path)
    db = SqliteDatabase.open(database)
    try:
        print("ready", flush=True)
        result = drive(sync(db, registry))
    finally:
        db.close()
    print(result.status, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])

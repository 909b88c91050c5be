"""Python apps: the `file:` URL of the local backend with sqlite3 and `libsql`, and a `libsql`
embedded replica (`sync_url`) of a sqld namespace. `libsql` runs in a process of its own
(clientkit), as in an app."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from service.config import load_settings
from tests.api.conftest import SECRET, Running
from tests.clients.clientkit import hosts_for, last_json, run_python
from tests.clients.conftest import Stack
from tests.sqld import free_port

READ_BACK = """
import json
import libsql
conn = libsql.connect({url!r})
conn.execute("INSERT INTO accounts (name) VALUES ('from libsql')")
conn.commit()
version = conn.execute("SELECT version FROM schema_version ORDER BY rowid DESC LIMIT 1").fetchone()
names = [r[0] for r in conn.execute("SELECT name FROM accounts ORDER BY id").fetchall()]
print(json.dumps({{"version": version[0], "names": names}}))
"""


def test_local_file_url_opens_with_sqlite3_and_libsql(tmp_path: Path) -> None:
    running = Running(
        load_settings({}, data_dir=str(tmp_path / "data"), jwt_secret=SECRET), free_port()
    )
    running.start()
    try:
        body = running.initialize("carol").json()
    finally:
        running.stop()
    url = body["database_url"]
    assert url.startswith("file:/")
    assert body["database_token"] is None
    conn = sqlite3.connect(url, uri=True, isolation_level=None)
    try:
        conn.execute("INSERT INTO accounts (name) VALUES ('from sqlite3')")
    finally:
        conn.close()
    result = last_json(run_python(READ_BACK.format(url=url), tmp_path, hosts=[], env={}))
    assert result == {"version": "1.2.0", "names": ["from sqlite3", "from libsql"]}


REPLICA = """
import json, os
import libsql
conn = libsql.connect(
    os.environ["REPLICA"], sync_url=os.environ["DATABASE_URL"], auth_token=os.environ["TOKEN"]
)
conn.sync()
before = conn.execute("SELECT name FROM accounts ORDER BY id").fetchall()
conn.execute("INSERT INTO accounts (name) VALUES ('via replica')")
conn.commit()
conn.sync()
after = conn.execute("SELECT name FROM accounts ORDER BY id").fetchall()
print(json.dumps({"before": [r[0] for r in before], "after": [r[0] for r in after]}))
"""


@pytest.mark.sqld
def test_libsql_embedded_replica_syncs_with_the_namespace(
    sqld_stack: Stack, tmp_path: Path
) -> None:
    tenantdb = sqld_stack.tenantdb
    body = tenantdb.initialize("dave").json()
    tenant = tenantdb.tenant(tenantdb.initialize("dave"))
    tenant.script("INSERT INTO accounts (name) VALUES ('from the server')")
    env = {
        "DATABASE_URL": body["database_url"],
        "TOKEN": body["database_token"],
        "REPLICA": str(tmp_path / "dave.db"),
    }
    result = last_json(
        run_python(REPLICA, tmp_path, hosts=hosts_for(body["database_url"]), env=env)
    )
    assert result == {
        "before": ["from the server"],
        "after": ["from the server", "via replica"],
    }
    # The replica's write went to the user's namespace, where tenantdb sees it.
    assert tenant.query("SELECT name FROM accounts ORDER BY id") == [
        ("from the server",),
        ("via replica",),
    ]
    # Its schema is the one tenantdb keeps: the replica carries the history table too.
    check = run_python(
        "import json, os, libsql\n"
        "c = libsql.connect(os.environ['REPLICA'], sync_url=os.environ['DATABASE_URL'],"
        " auth_token=os.environ['TOKEN'])\n"
        "c.sync()\n"
        "print(json.dumps(c.execute('SELECT max(version) FROM schema_version').fetchone()))\n",
        tmp_path,
        hosts=hosts_for(body["database_url"]),
        env=env,
    )
    assert json.loads(check.strip().splitlines()[-1]) == ["1.2.0"]

// What an app does with @libsql/client against the namespace tenantdb handed out:
// reads, writes, a write transaction (committed and rolled back), an embedded replica
// that syncs, and the refusals (another user's namespace, an expired token).
// Input in the environment; one JSON line of results on stdout.
import { createClient } from "@libsql/client";

const { DATABASE_URL, DATABASE_TOKEN, OTHER_URL, EXPIRED_TOKEN, REPLICA_FILE } = process.env;
const out = {};

async function refusal(url, authToken) {
  const client = createClient({ url, authToken });
  try {
    await client.execute("SELECT count(*) FROM accounts");
    return "accepted";
  } catch (error) {
    return String(error.code ?? error.message);
  } finally {
    client.close();
  }
}

const db = createClient({ url: DATABASE_URL, authToken: DATABASE_TOKEN });
await db.execute({ sql: "INSERT INTO accounts (name, broker) VALUES (?, ?)", args: ["Cash", "none"] });
out.read = (await db.execute("SELECT name, broker FROM accounts ORDER BY id")).rows.map((r) => [r.name, r.broker]);

const tx = await db.transaction("write");
await tx.execute({ sql: "INSERT INTO accounts (name) VALUES (?)", args: ["Margin"] });
await tx.execute({ sql: "UPDATE accounts SET broker = ? WHERE name = ?", args: ["ib", "Margin"] });
await tx.commit();
const undone = await db.transaction("write");
await undone.execute({ sql: "INSERT INTO accounts (name) VALUES (?)", args: ["Never"] });
await undone.rollback();
out.after_transactions = (await db.execute("SELECT name, broker FROM accounts ORDER BY id")).rows.map((r) => [r.name, r.broker]);

const replica = createClient({ url: `file:${REPLICA_FILE}`, syncUrl: DATABASE_URL, authToken: DATABASE_TOKEN });
await replica.sync();
out.replica_before = Number((await replica.execute("SELECT count(*) AS n FROM accounts")).rows[0].n);
await db.execute({ sql: "INSERT INTO accounts (name) VALUES (?)", args: ["Later"] });
await replica.sync();
out.replica_after_sync = Number((await replica.execute("SELECT count(*) AS n FROM accounts")).rows[0].n);
await replica.execute({ sql: "INSERT INTO accounts (name) VALUES (?)", args: ["Via replica"] });
out.primary_sees_replica_write = Number((await db.execute("SELECT count(*) AS n FROM accounts WHERE name = 'Via replica'")).rows[0].n);
replica.close();
db.close();

out.other_namespace = await refusal(OTHER_URL, DATABASE_TOKEN);
out.expired = await refusal(DATABASE_URL, EXPIRED_TOKEN);
console.log(JSON.stringify(out));

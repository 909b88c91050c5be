-- 1.2.0 data migration (runs after the additive changes, same transaction).
-- Backfill trades.updated_at, added in 1.2.0, from the latest known
-- timestamp of each trade. Idempotent: only touches rows still NULL.
-- (updated_at is not in trg_trades_touch_updated_at's UPDATE OF list,
-- so the trigger does not fire and the backfilled value is kept.)
UPDATE trades
SET updated_at = COALESCE(closed_at, opened_at)
WHERE updated_at IS NULL;

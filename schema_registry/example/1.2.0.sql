-- Trading journal schema 1.2.0: audit trail, triggers, P&L views.
-- Complete schema (not a delta). Everything from 1.1.0 is kept verbatim;
-- columns added in 1.2.0 are appended at the end of their table.

-- Brokerage / paper-trading accounts.
-- 1.1.0: + risk_per_trade_pct
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    broker TEXT,
    currency TEXT NOT NULL DEFAULT 'USD',
    starting_balance REAL NOT NULL DEFAULT 0,
    is_archived INTEGER NOT NULL DEFAULT 0 CHECK (is_archived IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    risk_per_trade_pct REAL NOT NULL DEFAULT 1.0
);

-- Individual trades (one row per position, entry + optional exit).
-- notional is computed on read and never stored.
-- 1.1.0: + status, + strategy_id
-- 1.2.0: + updated_at (maintained by trg_trades_touch_updated_at)
CREATE TABLE trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity REAL NOT NULL CHECK (quantity > 0),
    price REAL NOT NULL CHECK (price >= 0),
    exit_price REAL,
    fee REAL NOT NULL DEFAULT 0,
    opened_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    closed_at TEXT,
    notes TEXT,
    notional REAL GENERATED ALWAYS AS (quantity * price) VIRTUAL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'cancelled')),
    strategy_id INTEGER REFERENCES strategies(id) ON DELETE SET NULL,
    updated_at TEXT
);

-- Free-form labels such as 'breakout', 'earnings', 'mistake'.
CREATE TABLE tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL COLLATE NOCASE UNIQUE,
    color TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Many-to-many link between trades and tags (clustered on the pair).
CREATE TABLE trade_tags (
    trade_id INTEGER NOT NULL REFERENCES trades(id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (trade_id, tag_id)
) WITHOUT ROWID;

-- Daily notes, optionally attached to an account and/or a trade.
-- 1.1.0: + mood
CREATE TABLE journal_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    trade_id INTEGER REFERENCES trades(id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    entry_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    mood TEXT CHECK (mood IN ('calm', 'confident', 'anxious', 'frustrated', 'euphoric'))
);

-- Per-user preferences (strictly typed key/value store).
CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
) STRICT;

-- 1.1.0: named trading setups that trades can be attributed to.
CREATE TABLE strategies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    timeframe TEXT,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- 1.1.0: symbols being watched, with optional entry/stop levels.
CREATE TABLE watchlist_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    symbol TEXT NOT NULL,
    target_price REAL,
    stop_price REAL,
    notes TEXT,
    added_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- 1.2.0: append-only history of trade changes, written by triggers.
-- trade_id deliberately has no foreign key so history survives deletes.
CREATE TABLE trade_audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trade_id INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    details TEXT,
    changed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- 1.2.0 (optional table): broker/market-data API throttling events,
-- only present when broker sync is enabled for the user.
CREATE TABLE rate_limit_violations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    endpoint TEXT,
    retry_after_seconds INTEGER,
    occurred_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_trades_account_id ON trades(account_id);
CREATE INDEX idx_trades_symbol ON trades(symbol);
CREATE INDEX idx_trades_opened_at ON trades(opened_at);
CREATE INDEX idx_trade_tags_tag_id ON trade_tags(tag_id);
CREATE INDEX idx_journal_entries_account_id ON journal_entries(account_id);
CREATE INDEX idx_journal_entries_trade_id ON journal_entries(trade_id);

-- 1.1.0 indexes
CREATE UNIQUE INDEX ux_strategies_account_name ON strategies(account_id, name);
CREATE UNIQUE INDEX ux_watchlist_items_account_symbol ON watchlist_items(account_id, symbol);
CREATE INDEX idx_trades_strategy_id ON trades(strategy_id) WHERE strategy_id IS NOT NULL;
CREATE INDEX idx_trades_open_positions ON trades(account_id, symbol) WHERE status = 'open';
CREATE INDEX idx_trades_symbol_lower ON trades(lower(symbol));
CREATE INDEX idx_journal_entries_entry_day ON journal_entries(date(entry_at));

-- 1.2.0 indexes
CREATE INDEX idx_trade_audit_log_trade_id ON trade_audit_log(trade_id, changed_at);
CREATE INDEX idx_rate_limit_violations_occurred_at ON rate_limit_violations(occurred_at);

-- 1.2.0 triggers
-- Keep trades.updated_at current on every change unless the statement
-- already set it explicitly. updated_at is not in the OF list, so the
-- trigger's own UPDATE never re-fires it (even with recursive_triggers on).
CREATE TRIGGER trg_trades_touch_updated_at
AFTER UPDATE OF account_id, symbol, side, quantity, price, exit_price, fee, opened_at, closed_at, notes, status, strategy_id ON trades
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE trades SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

CREATE TRIGGER trg_trades_audit_insert
AFTER INSERT ON trades
FOR EACH ROW
BEGIN
    INSERT INTO trade_audit_log (trade_id, action, details)
    VALUES (NEW.id, 'insert', NEW.side || ' ' || NEW.quantity || ' ' || NEW.symbol || ' @ ' || NEW.price);
END;

CREATE TRIGGER trg_trades_audit_status
AFTER UPDATE OF status ON trades
FOR EACH ROW
WHEN NEW.status IS NOT OLD.status
BEGIN
    INSERT INTO trade_audit_log (trade_id, action, details)
    VALUES (NEW.id, 'update', 'status ' || OLD.status || ' -> ' || NEW.status);
END;

CREATE TRIGGER trg_trades_audit_delete
AFTER DELETE ON trades
FOR EACH ROW
BEGIN
    INSERT INTO trade_audit_log (trade_id, action, details)
    VALUES (OLD.id, 'delete', OLD.side || ' ' || OLD.quantity || ' ' || OLD.symbol);
END;

-- 1.2.0 views
-- Realized profit/loss per trade (NULL while the trade has no exit price).
CREATE VIEW trade_pnl AS
SELECT
    t.id AS trade_id,
    a.id AS account_id,
    a.name AS account_name,
    a.currency AS currency,
    t.symbol AS symbol,
    t.side AS side,
    t.quantity AS quantity,
    t.price AS entry_price,
    t.exit_price AS exit_price,
    t.fee AS fee,
    t.opened_at AS opened_at,
    t.closed_at AS closed_at,
    CASE
        WHEN t.exit_price IS NULL THEN NULL
        WHEN t.side = 'buy' THEN (t.exit_price - t.price) * t.quantity - t.fee
        ELSE (t.price - t.exit_price) * t.quantity - t.fee
    END AS realized_pnl
FROM trades AS t
JOIN accounts AS a ON a.id = t.account_id
WHERE t.status <> 'cancelled';

-- Closed-trade results per account per calendar day.
CREATE VIEW daily_summary AS
SELECT
    account_id,
    account_name,
    date(closed_at) AS trade_date,
    COUNT(*) AS trade_count,
    SUM(CASE WHEN realized_pnl > 0 THEN 1 ELSE 0 END) AS winning_trades,
    SUM(CASE WHEN realized_pnl < 0 THEN 1 ELSE 0 END) AS losing_trades,
    ROUND(SUM(realized_pnl), 2) AS net_pnl,
    ROUND(SUM(fee), 2) AS total_fees
FROM trade_pnl
WHERE closed_at IS NOT NULL AND realized_pnl IS NOT NULL
GROUP BY account_id, account_name, date(closed_at);

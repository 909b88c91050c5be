-- Trading journal schema 1.1.0: strategies, watchlist, trade status.
-- Complete schema (not a delta). Everything from 1.0.0 is kept verbatim;
-- columns added in 1.1.0 are appended at the end of their table.

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
    strategy_id INTEGER REFERENCES strategies(id) ON DELETE SET NULL
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

-- Installed plugins: one row per plugin id, pointing at the installed version's files.
CREATE TABLE plugins (
    id           TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    manifest     TEXT NOT NULL,
    wasm_sha256  TEXT NOT NULL,
    installed_at INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Plugin key-value data, scoped by plugin.
CREATE TABLE kv (
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;

-- The event outbox: one row per published event ...
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    key          TEXT,
    payload      BLOB NOT NULL,
    source       TEXT NOT NULL,
    published_at INTEGER NOT NULL
);

-- ... and one row per (event, subscriber) until delivered; failed ones stay as dead letters.
CREATE TABLE deliveries (
    event_seq       INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    subscriber      TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    claimed_by      TEXT,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (event_seq, subscriber)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_claim ON deliveries (claimed_by);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL DEFAULT '[]',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    builtin     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO roles (name, permissions, builtin) VALUES ('admin', '["*"]', 1);

-- API tokens and sign-in sessions: the secret is stored only as its SHA-256.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('api', 'session')),
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    scopes       TEXT NOT NULL,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE audit_log (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

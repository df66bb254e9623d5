-- Installed plugins: one row per plugin id, pointing at the installed version's files.
CREATE TABLE plugins (
    id           TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    manifest     TEXT NOT NULL,
    wasm_sha256  TEXT NOT NULL,
    installed_at BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Plugin key-value data, scoped by plugin.
CREATE TABLE kv (
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL COLLATE "C",
    value      BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (plugin, key)
);

-- The event outbox: one row per published event ...
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    key          TEXT,
    payload      BYTEA NOT NULL,
    source       TEXT NOT NULL,
    published_at BIGINT NOT NULL
);

-- ... and one row per (event, subscriber) until delivered; failed ones stay as dead letters.
CREATE TABLE deliveries (
    event_seq       BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    subscriber      TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    claimed_by      TEXT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (event_seq, subscriber)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_claim ON deliveries (claimed_by);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL DEFAULT '[]',
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    builtin     BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO roles (name, permissions, builtin) VALUES ('admin', '["*"]', TRUE);

-- API tokens and sign-in sessions: the secret is stored only as its SHA-256.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('api', 'session')),
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL,
    scopes       TEXT NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE audit_log (
    seq    BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

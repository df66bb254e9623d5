-- Publishers: who may publish, with their tokens and keys.
CREATE TABLE publishers (
    name       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    publisher   TEXT NOT NULL REFERENCES publishers (name) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Publisher keys the registry endorses; a revoked key stays listed with its reason.
CREATE TABLE keys (
    key_id        TEXT PRIMARY KEY,
    publisher     TEXT NOT NULL REFERENCES publishers (name) ON DELETE CASCADE,
    public_key    TEXT NOT NULL,
    endorsement   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revocation    TEXT
);

-- Rotations: a publisher's new key signed by its old one.
CREATE TABLE rotations (
    new_key_id TEXT PRIMARY KEY,
    statement  TEXT NOT NULL
);

CREATE TABLE packages (
    id         TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    downloads  BIGINT NOT NULL DEFAULT 0
);

-- Publishers allowed to publish versions of a package.
CREATE TABLE owners (
    package   TEXT NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    publisher TEXT NOT NULL REFERENCES publishers (name) ON DELETE CASCADE,
    PRIMARY KEY (package, publisher)
);

-- Versions are immutable once published; only `yanked` changes.
CREATE TABLE versions (
    package      TEXT NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    version      TEXT NOT NULL,
    entry        TEXT NOT NULL,
    yanked       BOOLEAN NOT NULL DEFAULT FALSE,
    search_text  TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    downloads    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (package, version)
);

-- The signed snapshot's version counter and other registry state.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

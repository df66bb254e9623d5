-- The marketplace: what a package's page shows beyond its index line, the accounts of people
-- who rate and review plugins, their sessions, their reviews and the reports on them.

-- A version's README.md and CHANGELOG.md, kept at publish so pages need not unpack archives.
ALTER TABLE versions ADD COLUMN readme TEXT;
ALTER TABLE versions ADD COLUMN changelog TEXT;

-- Marketplace accounts (not publishers: publishing stays with publisher tokens).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- Sign-in sessions: only the SHA-256 of the cookie's secret is stored.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- One review per user per package.
CREATE TABLE reviews (
    package    TEXT NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating     INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (package, user_id)
);
CREATE INDEX reviews_user ON reviews (user_id);

-- Reports on reviews, for the registry's admins; one per reporter per review.
CREATE TABLE review_reports (
    package    TEXT NOT NULL,
    author     TEXT NOT NULL,
    reporter   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (package, author, reporter),
    FOREIGN KEY (package, author) REFERENCES reviews (package, user_id) ON DELETE CASCADE
);

-- Blob metadata: one row per (plugin, key). The bytes live in the blob backend (files or S3) under
-- `object`, a generated name that is never derived from the key.
CREATE TABLE blobs (
    plugin       TEXT NOT NULL,
    key          TEXT NOT NULL,
    object       TEXT NOT NULL UNIQUE,
    size         INTEGER NOT NULL CHECK (size >= 0),
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;

-- Per-plugin totals, updated in the same transaction as `blobs`; its row is also the lock that
-- orders one plugin's blob writes.
CREATE TABLE blob_usage (
    plugin TEXT PRIMARY KEY,
    blobs  INTEGER NOT NULL CHECK (blobs >= 0),
    bytes  INTEGER NOT NULL CHECK (bytes >= 0)
) WITHOUT ROWID;

-- Blob metadata: one row per (plugin, key). The bytes live in the blob backend (files or S3) under
-- `object`, a generated name that is never derived from the key. Keys sort bytewise (COLLATE "C"),
-- as on SQLite, so listings and cursors agree on both.
CREATE TABLE blobs (
    plugin       TEXT NOT NULL,
    key          TEXT NOT NULL COLLATE "C",
    object       TEXT NOT NULL UNIQUE,
    size         BIGINT NOT NULL CHECK (size >= 0),
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (plugin, key)
);

-- Per-plugin totals, updated in the same transaction as `blobs`; its row is also the lock that
-- orders one plugin's blob writes.
CREATE TABLE blob_usage (
    plugin TEXT PRIMARY KEY,
    blobs  BIGINT NOT NULL CHECK (blobs >= 0),
    bytes  BIGINT NOT NULL CHECK (bytes >= 0)
);

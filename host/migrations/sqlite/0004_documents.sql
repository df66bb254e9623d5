-- Plugin document collections (ucms-documents). Each row owns a table `ucms_doc_<id>` that
-- ucms-documents creates on first use, so a plugin's declared indexes become real indexes on that
-- table. AUTOINCREMENT: an id (and so a table name) is never reused after a collection is dropped.
CREATE TABLE doc_collections (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin     TEXT NOT NULL,
    name       TEXT NOT NULL,
    -- Full-text search declaration as JSON ({"fields": [...], "language": "..."}), or NULL.
    search     TEXT,
    -- Next number for an index of this collection (`ucms_doc_<id>_i<n>`, `..._u<n>`).
    next_index INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    UNIQUE (plugin, name)
);

-- Indexes a plugin declared on a collection.
CREATE TABLE doc_indexes (
    collection INTEGER NOT NULL REFERENCES doc_collections (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    number     INTEGER NOT NULL,
    -- The indexed paths as a JSON array of strings.
    fields     TEXT NOT NULL,
    is_unique  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (collection, name)
);

-- What each plugin stores, kept in the same transaction as every document write (quotas).
CREATE TABLE doc_usage (
    plugin    TEXT PRIMARY KEY,
    documents INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0
);

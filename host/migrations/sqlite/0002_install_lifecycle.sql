-- Where an installed plugin came from, and the version before it (for rollback).
ALTER TABLE plugins ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE plugins ADD COLUMN package_digest TEXT;
ALTER TABLE plugins ADD COLUMN previous_version TEXT;
ALTER TABLE plugins ADD COLUMN previous_manifest TEXT;
ALTER TABLE plugins ADD COLUMN previous_sha256 TEXT;
ALTER TABLE plugins ADD COLUMN previous_source TEXT;

-- One row per install, upgrade, rollback or removal: the step it reached, so a crash at any
-- point is finished or undone at the next start.
CREATE TABLE install_journal (
    id           TEXT PRIMARY KEY,
    plugin       TEXT NOT NULL,
    operation    TEXT NOT NULL,
    from_version TEXT,
    to_version   TEXT NOT NULL,
    step         TEXT NOT NULL,
    owner        TEXT NOT NULL,
    error        TEXT,
    started_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
-- At most one unfinished operation per plugin, across every process sharing the database.
CREATE UNIQUE INDEX install_journal_open ON install_journal (plugin)
    WHERE step NOT IN ('done', 'failed', 'undone');

-- Schedules declared by installed plugins ([[schedules]]): one row per (plugin, name), kept in step
-- with the installed manifests by the scheduler. A node runs a tick only after moving next_at on
-- with a compare-and-set, so each tick runs once across all nodes.
CREATE TABLE schedules (
    plugin      TEXT NOT NULL,
    name        TEXT NOT NULL,
    cron        TEXT NOT NULL,
    -- Unix milliseconds of the next tick.
    next_at     BIGINT NOT NULL,
    last_run_at BIGINT,
    -- ok, error or skipped (the plugin was disabled or not loaded).
    last_status TEXT,
    last_error  TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (plugin, name)
);
CREATE INDEX schedules_due ON schedules (next_at);

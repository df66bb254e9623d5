-- Plugin settings saved from the admin (PUT /api/ucms/plugins/{id}/settings): a JSON object of
-- values by setting name. Values from ucms.toml or UCMS_ variables still win over them. Kept when
-- a plugin is removed with its data kept (and across upgrades and rollbacks); deleted by --purge.
CREATE TABLE plugin_settings (
    plugin TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);

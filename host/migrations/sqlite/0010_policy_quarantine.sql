-- Who signed each installed version (JSON {"publisher", "key_id"}; NULL when unsigned), so a
-- reloaded policy can judge running plugins by their publisher and key.
ALTER TABLE plugins ADD COLUMN signer TEXT;
ALTER TABLE plugins ADD COLUMN previous_signer TEXT;
-- Set when the plugin was quarantined for misbehaving (JSON: when, why, the failures that led to
-- it); NULL when it runs normally. Every node of the site stops serving it.
ALTER TABLE plugins ADD COLUMN quarantine TEXT;

-- The package digest of the version before (for rollback), so ucms.lock records the package a
-- rolled-back plugin came from.
ALTER TABLE plugins ADD COLUMN previous_package_digest TEXT;

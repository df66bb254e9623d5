-- The event bus: ordering per (subscriber, topic, key), and plugin files shared between nodes.

-- Deliveries carry their event's topic and key, so the claim can tell whether an earlier delivery
-- of the same (subscriber, topic, key) is still pending without joining every event.
ALTER TABLE deliveries ADD COLUMN topic TEXT;
ALTER TABLE deliveries ADD COLUMN key TEXT;
UPDATE deliveries SET topic = (SELECT e.topic FROM events e WHERE e.seq = deliveries.event_seq),
                      key = (SELECT e.key FROM events e WHERE e.seq = deliveries.event_seq);

-- The claim's probe for an earlier pending delivery of the same group.
CREATE INDEX deliveries_order ON deliveries (subscriber, topic, key, event_seq)
    WHERE state = 'pending' AND key IS NOT NULL;
-- The claim's scan: due deliveries, longest due first, in publishing order within a millisecond
-- (so the claim reads a batch off the index without sorting the backlog).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at, event_seq);
-- Dead letters by subscriber and topic, newest first.
CREATE INDEX deliveries_dead ON deliveries (subscriber, topic, event_seq) WHERE state = 'dead';

-- The installed files of each plugin version, so a node whose data directory lacks them (another
-- node installed the plugin) can write them before loading it.
CREATE TABLE plugin_files (
    plugin  TEXT NOT NULL,
    version TEXT NOT NULL,
    path    TEXT NOT NULL,
    bytes   BYTEA NOT NULL,
    PRIMARY KEY (plugin, version, path)
);

-- Identity and access: role descriptions and the built-in editor, viewer and public roles; CSRF
-- secrets of browser sessions; single-use tickets for password resets and invitations.

ALTER TABLE roles ADD COLUMN description TEXT NOT NULL DEFAULT '';
UPDATE roles SET description = 'Every permission, host and plugins' WHERE name = 'admin';
INSERT INTO roles (name, permissions, builtin, description) VALUES
    ('editor', '["ucms.plugins.read","ucms.users.read","*.*"]', TRUE,
     'Every permission plugins declare; reads plugins and users'),
    ('viewer', '["ucms.plugins.read","*.read","*.*.read"]', TRUE,
     'Read permissions plugins declare; reads plugins'),
    ('public', '[]', TRUE, 'What anonymous callers may do (nothing by default)');

-- A session (a token of kind 'session') opened by a browser carries the SHA-256 of its CSRF token
-- and how it was opened ('password', 'totp', 'oidc:NAME').
ALTER TABLE tokens ADD COLUMN csrf_hash BYTEA;
ALTER TABLE tokens ADD COLUMN method TEXT;

-- Password-reset and invitation tickets: the secret is stored only as its SHA-256.
CREATE TABLE user_tickets (
    hash       BYTEA PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('reset', 'invite')),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX user_tickets_user ON user_tickets (user_id);

CREATE INDEX audit_log_action ON audit_log (action, seq);

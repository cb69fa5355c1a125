-- Server-side sessions of the operator console (`qf console`, console/sessions.py).
--
-- The session cookie is signed (QF_CONSOLE_SESSION_SECRET) and holds a random session id and the
-- CSRF token, nothing else. Each request looks the id up here: logging out deletes the row, so a
-- cookie copied before logout is worthless after it, and a session ends server-side at expires_at
-- whatever the browser keeps. Only a SHA-256 of the id is stored, so reading this table gives no
-- usable cookie.

CREATE TABLE qf.console_sessions (
    id_hash     bytea       PRIMARY KEY CHECK (length(id_hash) = 32),
    reviewer    text        NOT NULL CHECK (reviewer <> ''),
    role        text        NOT NULL CHECK (role IN ('reviewer', 'viewer')),
    remote      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON qf.console_sessions (expires_at);
COMMENT ON TABLE qf.console_sessions IS
    'Open sessions of `qf console`: one row per login, deleted at logout; a session is valid while its row '
    'exists and expires_at is ahead.';
COMMENT ON COLUMN qf.console_sessions.id_hash IS 'SHA-256 of the session id the cookie carries (never the id).';
COMMENT ON COLUMN qf.console_sessions.reviewer IS 'Name of the login''s token (never the token).';
COMMENT ON COLUMN qf.console_sessions.role IS 'reviewer or viewer.';
COMMENT ON COLUMN qf.console_sessions.remote IS 'The client''s address at login, as the console saw it.';
COMMENT ON COLUMN qf.console_sessions.created_at IS 'When the session was opened (the login).';
COMMENT ON COLUMN qf.console_sessions.expires_at IS 'When the session ends, whatever the browser keeps.';

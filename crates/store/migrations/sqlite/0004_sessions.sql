-- Web UI sign-in sessions and each user's saved list views (SQLite).

-- One row per signed-in browser. The cookie carries a random token; only its SHA-256 is kept,
-- so a copy of the database does not let anyone sign in. A session ends when it is deleted
-- (sign-out), when it has been idle too long, or when it reaches its maximum age.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Every state-changing form of this session must echo it.
    csrf_token   TEXT NOT NULL,
    user_agent   TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

-- A named list URL (its query string) a user keeps, e.g. "My gold customers".
CREATE TABLE saved_views (
    id         BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    page       TEXT NOT NULL,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    query      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, page, name_key)
);

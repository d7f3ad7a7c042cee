-- Segments (SQLite): stored filters, their members kept current, and the queue of contacts
-- whose membership needs another look.

CREATE TABLE segments (
    id              BLOB PRIMARY KEY,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL UNIQUE,
    description     TEXT,
    -- The filter in its canonical text form, and as JSON.
    filter          TEXT NOT NULL,
    filter_json     TEXT NOT NULL,
    -- Whether time passing alone can change who is in (windows, birthdays, time in stage).
    depends_on_time INTEGER NOT NULL,
    member_count    INTEGER NOT NULL DEFAULT 0,
    refreshed_at    INTEGER,
    -- When the next full re-evaluation is due (time-dependent segments only).
    refresh_due_at  INTEGER,
    created_by      BLOB,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX segments_refresh_due ON segments (refresh_due_at) WHERE refresh_due_at IS NOT NULL;

-- Which segments a segment's filter names (`in segment "…"`): evaluated first, and protected
-- from deletion and renaming while named.
CREATE TABLE segment_dependencies (
    segment_id    BLOB NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    depends_on_id BLOB NOT NULL REFERENCES segments (id),
    PRIMARY KEY (segment_id, depends_on_id)
) WITHOUT ROWID;
CREATE INDEX segment_dependencies_target ON segment_dependencies (depends_on_id);

CREATE TABLE segment_members (
    segment_id BLOB NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    entered_at INTEGER NOT NULL,
    PRIMARY KEY (segment_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX segment_members_contact ON segment_members (contact_id);

-- Contacts changed since their memberships were last evaluated. Written in the same
-- transaction as the change, drained by the segment maintainer: a crash loses nothing.
CREATE TABLE segment_dirty (
    contact_id BLOB PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    marked_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Subscription state per topic, from email.subscribed / email.unsubscribed events; topic '*'
-- is an unsubscribe from everything. The latest change wins, whatever order events arrive in.
CREATE TABLE contact_subscriptions (
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    topic      TEXT NOT NULL,
    subscribed INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (contact_id, topic)
) WITHOUT ROWID;

-- Per-person event history by type: counts, sums and "last time" over a window are one
-- index range each.
CREATE INDEX events_kind ON events (contact_id, type, occurred_at);

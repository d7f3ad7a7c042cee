-- Segments (PostgreSQL): the same tables as SQLite's, in native types.

CREATE TABLE segments (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL UNIQUE,
    description     TEXT,
    filter          TEXT NOT NULL,
    filter_json     JSONB NOT NULL,
    depends_on_time BOOLEAN NOT NULL,
    member_count    BIGINT NOT NULL DEFAULT 0,
    refreshed_at    TIMESTAMPTZ,
    refresh_due_at  TIMESTAMPTZ,
    created_by      UUID,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX segments_refresh_due ON segments (refresh_due_at) WHERE refresh_due_at IS NOT NULL;

CREATE TABLE segment_dependencies (
    segment_id    UUID NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    depends_on_id UUID NOT NULL REFERENCES segments (id),
    PRIMARY KEY (segment_id, depends_on_id)
);
CREATE INDEX segment_dependencies_target ON segment_dependencies (depends_on_id);

CREATE TABLE segment_members (
    segment_id UUID NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    entered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (segment_id, contact_id)
);
CREATE INDEX segment_members_contact ON segment_members (contact_id);

CREATE TABLE segment_dirty (
    contact_id UUID PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    marked_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE contact_subscriptions (
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    topic      TEXT NOT NULL,
    subscribed BOOLEAN NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (contact_id, topic)
);

CREATE INDEX events_kind ON events (contact_id, type, occurred_at);

-- Events and the profiles derived from them (PostgreSQL): the same tables as SQLite's.

CREATE TABLE events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id   UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    occurred_at  TIMESTAMPTZ NOT NULL,
    id           UUID NOT NULL,
    source_id    TEXT,
    type         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    currency     TEXT,
    amount_minor BIGINT,
    payload      JSONB NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    actor_id     UUID
);
CREATE INDEX events_timeline ON events (contact_id, occurred_at, seq);
CREATE UNIQUE INDEX events_source ON events (source_id) WHERE source_id IS NOT NULL;

CREATE TABLE profiles (
    contact_id         UUID PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    first_seen_at      TIMESTAMPTZ,
    last_seen_at       TIMESTAMPTZ,
    last_engagement_at TIMESTAMPTZ,
    order_count        BIGINT NOT NULL DEFAULT 0,
    first_order_at     TIMESTAMPTZ,
    last_order_at      TIMESTAMPTZ,
    prev_order_at      TIMESTAMPTZ,
    revenue_base_minor BIGINT NOT NULL DEFAULT 0,
    refund_count       BIGINT NOT NULL DEFAULT 0,
    visit_count        BIGINT NOT NULL DEFAULT 0,
    first_visit_at     TIMESTAMPTZ,
    last_visit_at      TIMESTAMPTZ,
    email_opens        BIGINT NOT NULL DEFAULT 0,
    last_open_at       TIMESTAMPTZ,
    email_clicks       BIGINT NOT NULL DEFAULT 0,
    last_click_at      TIMESTAMPTZ,
    value_tier         TEXT,
    lifecycle_stage    TEXT NOT NULL DEFAULT 'lead',
    stage_reason       TEXT NOT NULL DEFAULT 'no purchase yet',
    stage_since        TIMESTAMPTZ,
    stage_due_at       TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX profiles_stage_due ON profiles (stage_due_at) WHERE stage_due_at IS NOT NULL;
CREATE INDEX profiles_stage ON profiles (lifecycle_stage);
CREATE INDEX profiles_tier ON profiles (value_tier);

CREATE TABLE profile_items (
    contact_id   UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    key          TEXT NOT NULL,
    mass         DOUBLE PRECISION NOT NULL DEFAULT 0,
    count        BIGINT NOT NULL DEFAULT 0,
    amount_minor BIGINT NOT NULL DEFAULT 0,
    last_at      TIMESTAMPTZ,
    PRIMARY KEY (contact_id, kind, key)
);

CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT,
    category    TEXT,
    currency    TEXT,
    price_minor BIGINT,
    purchases   BIGINT NOT NULL DEFAULT 0,
    views       BIGINT NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX products_category ON products (category, purchases);

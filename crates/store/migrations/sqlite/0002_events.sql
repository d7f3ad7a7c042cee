-- Events and the profiles derived from them (SQLite).

-- Every interaction, append-only, in the order it arrived: appending is what keeps ingest fast
-- (rows land on the last page instead of a random one). `events_timeline` finds a person's events.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    contact_id   BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    occurred_at  INTEGER NOT NULL,
    id           BLOB NOT NULL,
    -- The sender's id, which makes delivery idempotent; NULL when Rapport assigned the id.
    source_id    TEXT,
    type         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    -- The money the event is about (an order's total, a refund), in minor units.
    currency     TEXT,
    amount_minor INTEGER,
    payload      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    -- The user who recorded it, for staff actions.
    actor_id     BLOB
);
CREATE INDEX events_timeline ON events (contact_id, occurred_at, seq);
CREATE UNIQUE INDEX events_source ON events (source_id) WHERE source_id IS NOT NULL;

-- The counters of each person, kept current in the same transaction as their events.
CREATE TABLE profiles (
    contact_id         BLOB PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    first_seen_at      INTEGER,
    last_seen_at       INTEGER,
    last_engagement_at INTEGER,
    order_count        INTEGER NOT NULL DEFAULT 0,
    first_order_at     INTEGER,
    last_order_at      INTEGER,
    prev_order_at      INTEGER,
    revenue_base_minor INTEGER NOT NULL DEFAULT 0,
    refund_count       INTEGER NOT NULL DEFAULT 0,
    visit_count        INTEGER NOT NULL DEFAULT 0,
    first_visit_at     INTEGER,
    last_visit_at      INTEGER,
    email_opens        INTEGER NOT NULL DEFAULT 0,
    last_open_at       INTEGER,
    email_clicks       INTEGER NOT NULL DEFAULT 0,
    last_click_at      INTEGER,
    value_tier         TEXT,
    lifecycle_stage    TEXT NOT NULL DEFAULT 'lead',
    stage_reason       TEXT NOT NULL DEFAULT 'no purchase yet',
    stage_since        INTEGER,
    -- When the stage would next change by time alone (becoming at risk, lost).
    stage_due_at       INTEGER,
    updated_at         INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX profiles_stage_due ON profiles (stage_due_at) WHERE stage_due_at IS NOT NULL;
CREATE INDEX profiles_stage ON profiles (lifecycle_stage);
CREATE INDEX profiles_tier ON profiles (value_tier);

-- Per-person keyed figures: interests ('product', 'category': a decayed mass), products bought
-- ('sku': quantity) and revenue per currency ('currency': orders, net minor units).
CREATE TABLE profile_items (
    contact_id   BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    key          TEXT NOT NULL,
    mass         REAL NOT NULL DEFAULT 0,
    count        INTEGER NOT NULL DEFAULT 0,
    amount_minor INTEGER NOT NULL DEFAULT 0,
    last_at      INTEGER,
    PRIMARY KEY (contact_id, kind, key)
) WITHOUT ROWID;

-- Products seen in events (orders, views), with how often each sold: the catalogue that
-- recommendations draw from.
CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT,
    category    TEXT,
    currency    TEXT,
    price_minor INTEGER,
    purchases   INTEGER NOT NULL DEFAULT 0,
    views       INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX products_category ON products (category, purchases);

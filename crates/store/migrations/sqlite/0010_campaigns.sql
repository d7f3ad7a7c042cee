-- Campaigns: a template sent to a segment, now or at a set time (optionally at that local time
-- in each contact's zone), with a holdout that receives nothing so the effect can be measured.
CREATE TABLE campaigns (
    id                  BLOB PRIMARY KEY,
    name                TEXT NOT NULL,
    template_id         BLOB NOT NULL REFERENCES message_templates (id),
    segment_id          BLOB NOT NULL REFERENCES segments (id),
    -- JSON array of segment ids whose members never get this campaign.
    exclude_segment_ids TEXT NOT NULL DEFAULT '[]',
    -- The subscription topic it belongs to (newsletter, offers…); unsubscribing from it stops it.
    topic               TEXT,
    send_at             INTEGER,
    -- send_at is a wall-clock time read in each contact's own time zone.
    local_time          INTEGER NOT NULL DEFAULT 0,
    holdout_percent     INTEGER NOT NULL DEFAULT 0 CHECK (holdout_percent BETWEEN 0 AND 90),
    -- Orders within this many days of the message count as its conversions.
    conversion_days     INTEGER NOT NULL DEFAULT 7,
    status              TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'finished')),
    status_reason       TEXT,
    -- Set once the audience is chosen (recipients written): a resumed send continues from there.
    audience_at         INTEGER,
    created_by          BLOB REFERENCES users (id) ON DELETE SET NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX campaigns_created ON campaigns (created_at, id);
CREATE INDEX campaigns_active ON campaigns (status, send_at) WHERE status IN ('scheduled', 'sending');

-- Who a campaign chose: holdout members get nothing; the others get an outbox row, written in
-- batches, each batch in the transaction that records it here, so a crash resumes exactly.
CREATE TABLE campaign_recipients (
    campaign_id BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id  BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    holdout     INTEGER NOT NULL,
    -- 'pending' (not yet queued), 'queued' (has an outbox row), 'holdout', 'skipped' (a guard).
    state       TEXT NOT NULL CHECK (state IN ('pending', 'queued', 'holdout', 'skipped')),
    reason      TEXT,
    PRIMARY KEY (campaign_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX campaign_recipients_pending ON campaign_recipients (campaign_id, contact_id) WHERE state = 'pending';

-- Which campaign a message belongs to and what became of it after it left.
ALTER TABLE message_outbox ADD COLUMN campaign_id BLOB REFERENCES campaigns (id) ON DELETE SET NULL;
ALTER TABLE message_outbox ADD COLUMN topic TEXT;
-- A test send: goes to the address given, counts in no statistic.
ALTER TABLE message_outbox ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
ALTER TABLE message_outbox ADD COLUMN opened_at INTEGER;
ALTER TABLE message_outbox ADD COLUMN clicked_at INTEGER;
ALTER TABLE message_outbox ADD COLUMN bounced_at INTEGER;
ALTER TABLE message_outbox ADD COLUMN complained_at INTEGER;
ALTER TABLE message_outbox ADD COLUMN unsubscribed_at INTEGER;
ALTER TABLE message_outbox ADD COLUMN replied_at INTEGER;
CREATE INDEX message_outbox_campaign ON message_outbox (campaign_id, contact_id) WHERE campaign_id IS NOT NULL;

-- Addresses that must not be mailed again: a hard bounce or a spam complaint.
CREATE TABLE email_suppressions (
    address_key TEXT PRIMARY KEY,
    reason      TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'manual')),
    detail      TEXT,
    contact_id  BLOB REFERENCES contacts (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL
);

-- Subscription topics people can choose between in the preference centre.
CREATE TABLE subscription_topics (
    key         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    -- Whether a contact with no recorded choice receives it.
    default_subscribed INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

-- Consent, append-only: every grant and withdrawal per purpose and channel, with where it came
-- from and on what legal basis. A double opt-in grant waits for confirmed_at.
CREATE TABLE consent_ledger (
    id           BLOB PRIMARY KEY,
    contact_id   BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    purpose      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    granted      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    legal_basis  TEXT NOT NULL,
    evidence     TEXT,
    double_opt_in INTEGER NOT NULL DEFAULT 0,
    confirmed_at INTEGER,
    recorded_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    recorded_at  INTEGER NOT NULL
);
CREATE INDEX consent_ledger_contact ON consent_ledger (contact_id, recorded_at);

-- Privacy choices separate from consent: "do not track" stops opens, clicks and page views being
-- recorded; "do not contact" stops every marketing message on every channel.
CREATE TABLE contact_privacy (
    contact_id     BLOB PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    do_not_track   INTEGER NOT NULL DEFAULT 0,
    do_not_contact INTEGER NOT NULL DEFAULT 0,
    not_interested INTEGER NOT NULL DEFAULT 0,
    changed_at     INTEGER NOT NULL
);

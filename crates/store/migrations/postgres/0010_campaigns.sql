-- Campaigns: a template sent to a segment, now or at a set time (optionally at that local time
-- in each contact's zone), with a holdout that receives nothing so the effect can be measured.
CREATE TABLE campaigns (
    id                  UUID PRIMARY KEY,
    name                TEXT NOT NULL,
    template_id         UUID NOT NULL REFERENCES message_templates (id),
    segment_id          UUID NOT NULL REFERENCES segments (id),
    -- JSON array of segment ids whose members never get this campaign.
    exclude_segment_ids TEXT NOT NULL DEFAULT '[]',
    -- The subscription topic it belongs to (newsletter, offers…); unsubscribing from it stops it.
    topic               TEXT,
    send_at             TIMESTAMPTZ,
    -- send_at is a wall-clock time read in each contact's own time zone.
    local_time          BOOLEAN NOT NULL DEFAULT FALSE,
    holdout_percent     INTEGER NOT NULL DEFAULT 0 CHECK (holdout_percent BETWEEN 0 AND 90),
    -- Orders within this many days of the message count as its conversions.
    conversion_days     INTEGER NOT NULL DEFAULT 7,
    status              TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'finished')),
    status_reason       TEXT,
    -- Set once the audience is chosen (recipients written): a resumed send continues from there.
    audience_at         TIMESTAMPTZ,
    created_by          UUID REFERENCES users (id) ON DELETE SET NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaigns_created ON campaigns (created_at, id);
CREATE INDEX campaigns_active ON campaigns (status, send_at) WHERE status IN ('scheduled', 'sending');

-- Who a campaign chose: holdout members get nothing; the others get an outbox row, written in
-- batches, each batch in the transaction that records it here, so a crash resumes exactly.
CREATE TABLE campaign_recipients (
    campaign_id UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id  UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    holdout     BOOLEAN NOT NULL,
    -- 'pending' (not yet queued), 'queued' (has an outbox row), 'holdout', 'skipped' (a guard).
    state       TEXT NOT NULL CHECK (state IN ('pending', 'queued', 'holdout', 'skipped')),
    reason      TEXT,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE INDEX campaign_recipients_pending ON campaign_recipients (campaign_id, contact_id) WHERE state = 'pending';

-- Which campaign a message belongs to and what became of it after it left.
ALTER TABLE message_outbox ADD COLUMN campaign_id UUID REFERENCES campaigns (id) ON DELETE SET NULL;
ALTER TABLE message_outbox ADD COLUMN topic TEXT;
-- A test send: goes to the address given, counts in no statistic.
ALTER TABLE message_outbox ADD COLUMN test BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE message_outbox ADD COLUMN opened_at TIMESTAMPTZ;
ALTER TABLE message_outbox ADD COLUMN clicked_at TIMESTAMPTZ;
ALTER TABLE message_outbox ADD COLUMN bounced_at TIMESTAMPTZ;
ALTER TABLE message_outbox ADD COLUMN complained_at TIMESTAMPTZ;
ALTER TABLE message_outbox ADD COLUMN unsubscribed_at TIMESTAMPTZ;
ALTER TABLE message_outbox ADD COLUMN replied_at TIMESTAMPTZ;
CREATE INDEX message_outbox_campaign ON message_outbox (campaign_id, contact_id) WHERE campaign_id IS NOT NULL;

-- Addresses that must not be mailed again: a hard bounce or a spam complaint.
CREATE TABLE email_suppressions (
    address_key TEXT PRIMARY KEY,
    reason      TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'manual')),
    detail      TEXT,
    contact_id  UUID REFERENCES contacts (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- Subscription topics people can choose between in the preference centre.
CREATE TABLE subscription_topics (
    key         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    -- Whether a contact with no recorded choice receives it.
    default_subscribed BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL
);

-- Consent, append-only: every grant and withdrawal per purpose and channel, with where it came
-- from and on what legal basis. A double opt-in grant waits for confirmed_at.
CREATE TABLE consent_ledger (
    id           UUID PRIMARY KEY,
    contact_id   UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    purpose      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    granted      BOOLEAN NOT NULL,
    source       TEXT NOT NULL,
    legal_basis  TEXT NOT NULL,
    evidence     TEXT,
    double_opt_in BOOLEAN NOT NULL DEFAULT FALSE,
    confirmed_at TIMESTAMPTZ,
    recorded_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    recorded_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX consent_ledger_contact ON consent_ledger (contact_id, recorded_at);

-- Privacy choices separate from consent: "do not track" stops opens, clicks and page views being
-- recorded; "do not contact" stops every marketing message on every channel.
CREATE TABLE contact_privacy (
    contact_id     UUID PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    do_not_track   BOOLEAN NOT NULL DEFAULT FALSE,
    do_not_contact BOOLEAN NOT NULL DEFAULT FALSE,
    not_interested BOOLEAN NOT NULL DEFAULT FALSE,
    changed_at     TIMESTAMPTZ NOT NULL
);

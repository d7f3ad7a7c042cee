-- The automation engine's durable state: every run, wait, scheduled date and outgoing call is
-- a row, so a crash loses nothing and a restart repeats nothing.

-- The event types enabled workflows react to (trigger, waits, exit_when). Ingest copies events
-- of these types into automation_inbox in the same transaction. `*schedule` marks a workflow
-- with a date or inactivity trigger, whose schedules follow contact edits.
CREATE TABLE workflow_listens (
    event_type  TEXT NOT NULL,
    workflow_id BLOB NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    PRIMARY KEY (event_type, workflow_id)
);
CREATE INDEX workflow_listens_workflow ON workflow_listens (workflow_id);

-- Events the engine has yet to look at: a copy of the columns a trigger's conditions read
-- (named as in `events`, so the same compiled conditions apply).
CREATE TABLE automation_inbox (
    id           BLOB PRIMARY KEY,
    contact_id   BLOB NOT NULL,
    type         TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    currency     TEXT,
    amount_minor INTEGER,
    payload      TEXT NOT NULL,
    queued_at    INTEGER NOT NULL
);
CREATE INDEX automation_inbox_queued ON automation_inbox (queued_at, id);
-- Runs of a contact with events still to look at wait for them (an exit, a reply).
CREATE INDEX automation_inbox_contact ON automation_inbox (contact_id);

-- Contacts whose date and inactivity schedules must be worked out again (an edit, a new
-- relation, a workflow switched on).
CREATE TABLE automation_dirty (
    contact_id BLOB PRIMARY KEY,
    marked_at  INTEGER NOT NULL
);

-- When a time-based trigger next fires for a contact (and, for a related person's date, which
-- relation it counts from: `subject`).
CREATE TABLE workflow_schedules (
    workflow_id     BLOB NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    contact_id      BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    subject         TEXT NOT NULL DEFAULT '',
    -- Occurrences up to this instant have been handled (fired, or passed before the workflow
    -- was switched on).
    handled_through INTEGER NOT NULL,
    next_at         INTEGER,
    PRIMARY KEY (workflow_id, contact_id, subject)
);
CREATE INDEX workflow_schedules_due ON workflow_schedules (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX workflow_schedules_contact ON workflow_schedules (contact_id);

-- One contact's way through one version of a workflow. The occurrence (an event, a birthday, a
-- threshold level) makes starting idempotent.
CREATE TABLE workflow_runs (
    id          BLOB PRIMARY KEY,
    workflow_id BLOB NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    contact_id  BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    occurrence  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ready', 'waiting', 'done', 'exited', 'failed', 'cancelled')),
    -- The step to run next (ready) or being waited on (waiting); NULL once the run has ended.
    step        TEXT,
    -- When a ready or waiting run is next looked at.
    due_at      INTEGER,
    -- An event type that ends the current wait early.
    waiting_for TEXT,
    -- What started the run: trigger kind, event, segment, date, level.
    cause       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    end_reason  TEXT,
    UNIQUE (workflow_id, contact_id, occurrence)
);
CREATE INDEX workflow_runs_due ON workflow_runs (due_at) WHERE status IN ('ready', 'waiting');
CREATE INDEX workflow_runs_contact ON workflow_runs (contact_id, started_at);
CREATE INDEX workflow_runs_active ON workflow_runs (contact_id, workflow_id) WHERE status IN ('ready', 'waiting');
CREATE INDEX workflow_runs_workflow ON workflow_runs (workflow_id, started_at);

-- What each run did, step by step: done, blocked (and why), failed, deferred, waited.
CREATE TABLE workflow_run_steps (
    run_id  BLOB NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    step    TEXT NOT NULL,
    action  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Outgoing webhook calls, delivered after the run's transaction commits; retried with backoff.
CREATE TABLE webhook_deliveries (
    id              BLOB PRIMARY KEY,
    run_id          BLOB REFERENCES workflow_runs (id) ON DELETE SET NULL,
    -- Sent as the Idempotency-Key header: the same for every attempt of one step of one run.
    idempotency_key TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    secret_ref      TEXT,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    -- While a worker calls it: another one leaves it alone until then.
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Messages to customers, written before anything is sent; channels (email, SMS) claim them.
CREATE TABLE message_outbox (
    id              BLOB PRIMARY KEY,
    run_id          BLOB REFERENCES workflow_runs (id) ON DELETE SET NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    contact_id      BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL,
    template        TEXT NOT NULL,
    subject         TEXT,
    marketing       INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'unsendable', 'cancelled')),
    status_reason   TEXT,
    -- The recipient's address when the message was queued.
    recipient       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    -- While a sender hands it to the server: another leaves it alone until then.
    lease_until     INTEGER,
    sent_at         INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX message_outbox_due ON message_outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX message_outbox_contact ON message_outbox (contact_id, created_at);
CREATE INDEX message_outbox_status ON message_outbox (status, created_at);

-- Loyalty points and coupons handed out (loyalty grows this later).
CREATE TABLE points_ledger (
    id         BLOB PRIMARY KEY,
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    points     INTEGER NOT NULL,
    reason     TEXT,
    coupon     TEXT,
    run_id     BLOB REFERENCES workflow_runs (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX points_ledger_contact ON points_ledger (contact_id, created_at);

-- Messages for a user from automation ("Ana just became a VIP").
CREATE TABLE notifications (
    id         BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_id BLOB REFERENCES contacts (id) ON DELETE CASCADE,
    message    TEXT NOT NULL,
    run_id     BLOB REFERENCES workflow_runs (id) ON DELETE SET NULL,
    read_at    INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);

-- The run that created a task, for its cause chain.
ALTER TABLE tasks ADD COLUMN run_id BLOB REFERENCES workflow_runs (id) ON DELETE SET NULL;

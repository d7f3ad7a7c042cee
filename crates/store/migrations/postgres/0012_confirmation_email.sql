-- A double opt-in confirmation email carries the link for the grant it asks to confirm.
ALTER TABLE message_outbox ADD COLUMN consent_id UUID REFERENCES consent_ledger (id) ON DELETE SET NULL;

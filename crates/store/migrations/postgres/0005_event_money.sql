-- Money figures over a person's orders (`sum(order.completed.total, last 365d) > 1000`) read
-- only this index instead of each event row. Partial: only events that carry money.
CREATE INDEX events_money ON events (contact_id, type, occurred_at, currency, amount_minor) WHERE amount_minor IS NOT NULL;

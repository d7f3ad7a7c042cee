-- Statistics per workflow message step: a workflow's runs lead to their messages.
CREATE INDEX message_outbox_run ON message_outbox (run_id) WHERE run_id IS NOT NULL;

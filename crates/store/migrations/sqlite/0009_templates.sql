-- Message templates (subject, text and HTML bodies, in minijinja) and the layouts that wrap
-- them. One name may have several locales; '' is the default one.
CREATE TABLE message_layouts (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    html       TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE message_templates (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    locale     TEXT NOT NULL DEFAULT '',
    channel    TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'sms')),
    -- Transactional messages (a receipt, a password) skip marketing consent and caps.
    purpose    TEXT NOT NULL DEFAULT 'marketing' CHECK (purpose IN ('marketing', 'transactional')),
    subject    TEXT NOT NULL,
    text       TEXT NOT NULL,
    html       TEXT,
    layout     TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (name_key, locale)
);
CREATE INDEX message_templates_created ON message_templates (created_at, id);
CREATE INDEX message_templates_name ON message_templates (name_key, locale, id);

-- Keys Rapport makes for itself (signing unsubscribe links): random, made once, shared by every
-- instance.
CREATE TABLE app_secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

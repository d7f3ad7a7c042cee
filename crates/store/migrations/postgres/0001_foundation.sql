-- Foundation schema (PostgreSQL): the same tables as SQLite's, in native types.
-- `*_key` columns hold lower-cased copies for case-insensitive lookups, sorting and search.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'manager', 'admin')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_name ON users (name_key, id);
CREATE INDEX users_created ON users (created_at, id);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'manager', 'admin')),
    prefix       TEXT NOT NULL,
    key_hash     BYTEA NOT NULL UNIQUE,
    user_id      UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE TABLE contacts (
    id                  UUID PRIMARY KEY,
    display_name        TEXT NOT NULL,
    name_key            TEXT NOT NULL,
    first_name          TEXT,
    middle_name         TEXT,
    last_name           TEXT,
    title               TEXT,
    birthday_month      BIGINT,
    birthday_day        BIGINT,
    birthday_year       BIGINT,
    time_zone           TEXT,
    locale              TEXT,
    address_street      TEXT,
    address_street2     TEXT,
    address_city        TEXT,
    address_region      TEXT,
    address_postal_code TEXT,
    address_country     TEXT,
    source              TEXT,
    owner_id            UUID REFERENCES users (id) ON DELETE SET NULL,
    custom_fields       JSONB NOT NULL DEFAULT '{}',
    -- emails, phones, tags and external ids as one JSON object, rebuilt from the child
    -- tables on every change, so a contact is read without touching them.
    children            JSONB NOT NULL DEFAULT '{}',
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX contacts_name ON contacts (name_key, id);
CREATE INDEX contacts_last_name ON contacts (lower(coalesce(last_name, '')), id);
CREATE INDEX contacts_created ON contacts (created_at, id);
CREATE INDEX contacts_updated ON contacts (updated_at, id);
CREATE INDEX contacts_owner ON contacts (owner_id);
CREATE INDEX contacts_birthday ON contacts (birthday_month, birthday_day);

CREATE TABLE contact_emails (
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    address    TEXT NOT NULL UNIQUE,
    label      TEXT,
    is_primary BOOLEAN NOT NULL,
    PRIMARY KEY (contact_id, position)
);

CREATE TABLE contact_phones (
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    e164       TEXT NOT NULL,
    raw        TEXT NOT NULL,
    digits     TEXT NOT NULL,
    label      TEXT,
    is_primary BOOLEAN NOT NULL,
    PRIMARY KEY (contact_id, position)
);
CREATE INDEX contact_phones_e164 ON contact_phones (e164);

CREATE TABLE contact_external_ids (
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    contact_id  UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (source, external_id)
);
CREATE INDEX contact_external_ids_contact ON contact_external_ids (contact_id);

CREATE TABLE tags (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,
    color       TEXT,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE contact_tags (
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id     UUID NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE INDEX contact_tags_tag ON contact_tags (tag_id, contact_id);

CREATE TABLE companies (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    domain        TEXT,
    industry      TEXT,
    size          TEXT,
    owner_id      UUID REFERENCES users (id) ON DELETE SET NULL,
    custom_fields JSONB NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX companies_name ON companies (name_key, id);
CREATE INDEX companies_domain ON companies (domain);
CREATE INDEX companies_created ON companies (created_at, id);
CREATE INDEX companies_updated ON companies (updated_at, id);
CREATE INDEX companies_owner ON companies (owner_id);

CREATE TABLE company_tags (
    company_id UUID NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    tag_id     UUID NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (company_id, tag_id)
);
CREATE INDEX company_tags_tag ON company_tags (tag_id, company_id);

CREATE TABLE contact_companies (
    id         UUID PRIMARY KEY,
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    company_id UUID NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    role       TEXT,
    is_primary BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (contact_id, company_id)
);
CREATE INDEX contact_companies_company ON contact_companies (company_id, contact_id);

CREATE TABLE relations (
    id                     UUID PRIMARY KEY,
    contact_id             UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind                   TEXT NOT NULL,
    custom_kind            TEXT,
    related_contact_id     UUID REFERENCES contacts (id) ON DELETE SET NULL,
    related_name           TEXT,
    related_birthday_month BIGINT,
    related_birthday_day   BIGINT,
    related_birthday_year  BIGINT,
    notes                  TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
CREATE INDEX relations_contact ON relations (contact_id, created_at);
CREATE INDEX relations_related ON relations (related_contact_id);

CREATE TABLE notes (
    id         UUID PRIMARY KEY,
    contact_id UUID REFERENCES contacts (id) ON DELETE CASCADE,
    company_id UUID REFERENCES companies (id) ON DELETE CASCADE,
    body       TEXT NOT NULL,
    author_id  UUID REFERENCES users (id) ON DELETE SET NULL,
    pinned     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK ((contact_id IS NULL) <> (company_id IS NULL))
);
CREATE INDEX notes_contact ON notes (contact_id, created_at);
CREATE INDEX notes_company ON notes (company_id, created_at);
CREATE INDEX notes_created ON notes (created_at, id);

CREATE TABLE custom_field_definitions (
    id          UUID PRIMARY KEY,
    record_type TEXT NOT NULL,
    key         TEXT NOT NULL,
    label       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    required    BOOLEAN NOT NULL DEFAULT FALSE,
    options     JSONB NOT NULL DEFAULT '[]',
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (record_type, key)
);

CREATE TABLE idempotency_keys (
    api_key_id  UUID NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    response    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);


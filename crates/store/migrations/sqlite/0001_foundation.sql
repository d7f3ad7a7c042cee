-- Foundation schema (SQLite). Times are INTEGER microseconds since the Unix epoch (UTC);
-- ids are 16-byte UUIDv7 blobs; JSON is TEXT. `*_key` columns hold lower-cased copies
-- for case-insensitive lookups, sorting and search. Tables keyed by a blob id or read by
-- their composite key are WITHOUT ROWID: a lookup is one B-tree descent instead of an index
-- probe followed by a table probe (measured with `rapport bench http`).

CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'manager', 'admin')),
    active        INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX users_name ON users (name_key, id);
CREATE INDEX users_created ON users (created_at, id);

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'manager', 'admin')),
    prefix       TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    user_id      BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE contacts (
    id                  BLOB PRIMARY KEY,
    display_name        TEXT NOT NULL,
    name_key            TEXT NOT NULL,
    first_name          TEXT,
    middle_name         TEXT,
    last_name           TEXT,
    title               TEXT,
    birthday_month      INTEGER,
    birthday_day        INTEGER,
    birthday_year       INTEGER,
    time_zone           TEXT,
    locale              TEXT,
    address_street      TEXT,
    address_street2     TEXT,
    address_city        TEXT,
    address_region      TEXT,
    address_postal_code TEXT,
    address_country     TEXT,
    source              TEXT,
    owner_id            BLOB REFERENCES users (id) ON DELETE SET NULL,
    custom_fields       TEXT NOT NULL DEFAULT '{}',
    -- emails, phones, tags and external ids as one JSON object, rebuilt from the child
    -- tables on every change, so a contact is read without touching them.
    children            TEXT NOT NULL DEFAULT '{}',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX contacts_name ON contacts (name_key, id);
CREATE INDEX contacts_last_name ON contacts (lower(coalesce(last_name, '')), id);
CREATE INDEX contacts_created ON contacts (created_at, id);
CREATE INDEX contacts_updated ON contacts (updated_at, id);
CREATE INDEX contacts_owner ON contacts (owner_id);
CREATE INDEX contacts_birthday ON contacts (birthday_month, birthday_day);

CREATE TABLE contact_emails (
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    address    TEXT NOT NULL UNIQUE,
    label      TEXT,
    is_primary INTEGER NOT NULL,
    PRIMARY KEY (contact_id, position)
) WITHOUT ROWID;

CREATE TABLE contact_phones (
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    e164       TEXT NOT NULL,
    raw        TEXT NOT NULL,
    digits     TEXT NOT NULL,
    label      TEXT,
    is_primary INTEGER NOT NULL,
    PRIMARY KEY (contact_id, position)
) WITHOUT ROWID;
CREATE INDEX contact_phones_e164 ON contact_phones (e164);

CREATE TABLE contact_external_ids (
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    contact_id  BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (source, external_id)
) WITHOUT ROWID;
CREATE INDEX contact_external_ids_contact ON contact_external_ids (contact_id);

CREATE TABLE tags (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,
    color       TEXT,
    description TEXT,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE contact_tags (
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id     BLOB NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX contact_tags_tag ON contact_tags (tag_id, contact_id);

CREATE TABLE companies (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    domain        TEXT,
    industry      TEXT,
    size          TEXT,
    owner_id      BLOB REFERENCES users (id) ON DELETE SET NULL,
    custom_fields TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX companies_name ON companies (name_key, id);
CREATE INDEX companies_domain ON companies (domain);
CREATE INDEX companies_created ON companies (created_at, id);
CREATE INDEX companies_updated ON companies (updated_at, id);
CREATE INDEX companies_owner ON companies (owner_id);

CREATE TABLE company_tags (
    company_id BLOB NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    tag_id     BLOB NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (company_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX company_tags_tag ON company_tags (tag_id, company_id);

CREATE TABLE contact_companies (
    id         BLOB PRIMARY KEY,
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    company_id BLOB NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    role       TEXT,
    is_primary INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (contact_id, company_id)
);
CREATE INDEX contact_companies_company ON contact_companies (company_id, contact_id);

CREATE TABLE relations (
    id                     BLOB PRIMARY KEY,
    contact_id             BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind                   TEXT NOT NULL,
    custom_kind            TEXT,
    related_contact_id     BLOB REFERENCES contacts (id) ON DELETE SET NULL,
    related_name           TEXT,
    related_birthday_month INTEGER,
    related_birthday_day   INTEGER,
    related_birthday_year  INTEGER,
    notes                  TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX relations_contact ON relations (contact_id, created_at);
CREATE INDEX relations_related ON relations (related_contact_id);

CREATE TABLE notes (
    id         BLOB PRIMARY KEY,
    contact_id BLOB REFERENCES contacts (id) ON DELETE CASCADE,
    company_id BLOB REFERENCES companies (id) ON DELETE CASCADE,
    body       TEXT NOT NULL,
    author_id  BLOB REFERENCES users (id) ON DELETE SET NULL,
    pinned     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((contact_id IS NULL) <> (company_id IS NULL))
);
CREATE INDEX notes_contact ON notes (contact_id, created_at);
CREATE INDEX notes_company ON notes (company_id, created_at);
CREATE INDEX notes_created ON notes (created_at, id);

CREATE TABLE custom_field_definitions (
    id          BLOB PRIMARY KEY,
    record_type TEXT NOT NULL,
    key         TEXT NOT NULL,
    label       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    required    INTEGER NOT NULL DEFAULT 0,
    options     TEXT NOT NULL DEFAULT '[]',
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (record_type, key)
);

CREATE TABLE idempotency_keys (
    api_key_id  BLOB NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    response    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Automation workflows. Each change to a document is a new version; runs keep the version they
-- started on, so editing a live workflow never changes what a run in flight does.
CREATE TABLE workflows (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    enabled    INTEGER NOT NULL DEFAULT 0,
    version    INTEGER NOT NULL,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX workflows_created ON workflows (created_at, id);
CREATE INDEX workflows_name ON workflows (name_key, id);

CREATE TABLE workflow_versions (
    workflow_id BLOB NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    -- The canonical JSON document.
    spec        TEXT NOT NULL,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

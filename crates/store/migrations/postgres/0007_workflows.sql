-- Automation workflows. Each change to a document is a new version; runs keep the version they
-- started on, so editing a live workflow never changes what a run in flight does.
CREATE TABLE workflows (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    enabled    BOOLEAN NOT NULL DEFAULT FALSE,
    version    BIGINT NOT NULL,
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX workflows_created ON workflows (created_at, id);
CREATE INDEX workflows_name ON workflows (name_key, id);

CREATE TABLE workflow_versions (
    workflow_id UUID NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    -- The canonical JSON document.
    spec        JSONB NOT NULL,
    created_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

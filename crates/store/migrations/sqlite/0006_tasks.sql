-- Tasks for the team: what to do, about whom, by when, and why.
CREATE TABLE tasks (
    id          BLOB PRIMARY KEY,
    title       TEXT NOT NULL,
    reason      TEXT,
    contact_id  BLOB REFERENCES contacts (id) ON DELETE CASCADE,
    company_id  BLOB REFERENCES companies (id) ON DELETE CASCADE,
    assignee_id BLOB REFERENCES users (id) ON DELETE SET NULL,
    due_at      INTEGER,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    closed_at   INTEGER,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    -- The workflow that created it. Not a foreign key: its tasks stay when a workflow goes.
    workflow_id BLOB,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- Someone's open tasks by due time: "my day" and "overdue".
CREATE INDEX tasks_assignee_due ON tasks (assignee_id, status, due_at);
CREATE INDEX tasks_due ON tasks (status, due_at);
CREATE INDEX tasks_contact ON tasks (contact_id, created_at);
CREATE INDEX tasks_company ON tasks (company_id, created_at);
CREATE INDEX tasks_created ON tasks (created_at, id);

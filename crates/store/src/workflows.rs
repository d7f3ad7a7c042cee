//! Workflow documents, versioned. The document is checked in `core::workflow`; here the names
//! it uses are checked against the data: segments, users, other workflows, and that each
//! segment filter in it compiles.

use rapport_core::new_id;
use rapport_core::workflow::{Workflow, WorkflowSpec};
use rapport_core::{FieldError, Timestamp, ValidationErrors};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::db::Tx;
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

/// Which workflows `list_workflows` returns.
#[derive(Debug, Clone, Default)]
pub struct WorkflowFilter {
    pub enabled: Option<bool>,
}

const SORTS: &[SortField] = &[
    SortField { name: "name", expr: "w.name_key", kind: SortKind::Text },
    SortField { name: "created_at", expr: "w.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "w.updated_at", kind: SortKind::Time },
];
const SELECT: &str = "SELECT w.id, w.enabled, w.version, v.spec, w.created_at, w.updated_at";
const FROM: &str = "FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.version";

fn map_row(r: Row) -> Result<Workflow> {
    let id = r.uuid(0)?;
    let spec = WorkflowSpec::parse(r.json(3)?)
        .map_err(|e| StoreError::Database(format!("stored workflow {id} no longer parses: {e}")))?;
    Ok(Workflow { id, enabled: r.bool(1)?, version: r.i64(2)?, spec, created_at: r.time(4)?, updated_at: r.time(5)? })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Workflow> {
    map_row(
        tx.query_opt(&format!("{SELECT} {FROM} WHERE w.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("workflow", id))?,
    )
}

fn name_key(name: &str) -> String {
    name.to_lowercase()
}

impl Store {
    /// Checks what the document names against the data, reporting every problem with its path.
    fn check_workflow_refs(&self, tx: &mut dyn Tx, id: Option<Uuid>, spec: &WorkflowSpec, now: Timestamp) -> Result<()> {
        let mut errs = ValidationErrors::default();
        let other = id.unwrap_or_else(Uuid::nil);
        if tx.exists("SELECT 1 FROM workflows WHERE name_key = $1 AND id <> $2", &[name_key(&spec.name).into(), other.into()])? {
            return Err(StoreError::conflict("name", format!("a workflow is already named \"{}\"", spec.name)));
        }
        let cx = self.segment_context(tx, now)?;
        for name in spec.segments() {
            if !cx.segments.contains_key(&name.trim().to_lowercase()) {
                errs.push("trigger.segment", format!("no segment is named \"{name}\""));
            }
        }
        drop(cx);
        for (path, email) in spec.named_users() {
            if !tx.exists("SELECT 1 FROM users WHERE lower(email) = $1", &[email.as_str().to_lowercase().into()])? {
                errs.push(path, format!("no user has the email {}", email.as_str()));
            }
        }
        for (path, step) in spec.walk() {
            if let rapport_core::workflow::Step::Action(rapport_core::workflow::Action::StartWorkflow { workflow }) = step
                && name_key(workflow) != name_key(&spec.name)
                && !tx.exists("SELECT 1 FROM workflows WHERE name_key = $1", &[name_key(workflow).into()])?
            {
                errs.push(format!("{path}.workflow"), format!("no workflow is named \"{workflow}\""));
            }
        }
        for (path, filter) in spec.filters() {
            let mut params = Vec::new();
            if let Err(e) = self.contact_filter_sql(tx, filter, &mut params) {
                match e {
                    StoreError::Invalid(v) => {
                        for f in v.errors {
                            errs.errors.push(FieldError { field: path.clone(), ..f });
                        }
                    }
                    other => return Err(other),
                }
            }
        }
        Ok(errs.into_result()?)
    }

    /// Stores a new workflow, switched off. `doc` is the JSON document; `caller` the user who
    /// wrote it.
    pub async fn create_workflow(
        &self,
        doc: Json,
        caller: Option<Uuid>,
        idem: Option<IdempotencyKey>,
    ) -> Result<Created<Workflow>> {
        let now = self.now();
        let store = self.clone();
        self.create_once(idem, move |tx| {
            let spec = WorkflowSpec::parse(doc.clone())?;
            store.check_workflow_refs(tx, None, &spec, now)?;
            let id = new_id();
            tx.execute(
                "INSERT INTO workflows (id, name, name_key, enabled, version, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 1, $5, $6, $6)",
                &[id.into(), spec.name.as_str().into(), name_key(&spec.name).into(), false.into(), caller.into(), now.into()],
            )?;
            insert_version(tx, id, 1, &spec, caller, now)?;
            load(tx, id)
        })
        .await
    }

    pub async fn get_workflow(&self, id: Uuid) -> Result<Workflow> {
        self.read_point(move |tx| load(tx, id)).await
    }

    /// Changes the document with the top-level keys of `patch`; a real change is a new version.
    pub async fn update_workflow(&self, id: Uuid, patch: Json, caller: Option<Uuid>) -> Result<Workflow> {
        let now = self.now();
        let store = self.clone();
        self.write(move |tx| {
            let current = load(tx, id)?;
            let spec = current.spec.patched(patch.clone())?;
            if spec == current.spec {
                return Ok(current);
            }
            store.check_workflow_refs(tx, Some(id), &spec, now)?;
            let version = current.version + 1;
            insert_version(tx, id, version, &spec, caller, now)?;
            tx.execute(
                "UPDATE workflows SET name = $2, name_key = $3, version = $4, updated_at = $5 WHERE id = $1",
                &[id.into(), spec.name.as_str().into(), name_key(&spec.name).into(), version.into(), now.into()],
            )?;
            // Runs in flight keep their version; new runs and schedules follow the new one.
            let schedule_changed = spec.trigger != current.spec.trigger;
            crate::automation::sync_listens(tx, id, current.enabled, &spec, schedule_changed, now)?;
            load(tx, id)
        })
        .await
    }

    /// Switches a workflow on or off. Switching on checks its names again (a segment or user
    /// it names may have gone since it was saved) and starts listening for its trigger; runs
    /// of a workflow that is off wait, and go on when it is switched on again.
    pub async fn set_workflow_enabled(&self, id: Uuid, enabled: bool) -> Result<Workflow> {
        let now = self.now();
        let store = self.clone();
        self.write(move |tx| {
            let current = load(tx, id)?;
            if enabled {
                store.check_workflow_refs(tx, Some(id), &current.spec, now)?;
            }
            if current.enabled != enabled {
                tx.execute(
                    "UPDATE workflows SET enabled = $2, updated_at = $3 WHERE id = $1",
                    &[id.into(), enabled.into(), now.into()],
                )?;
                crate::automation::sync_listens(tx, id, enabled, &current.spec, true, now)?;
            }
            load(tx, id)
        })
        .await
    }

    pub async fn delete_workflow(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            load(tx, id)?;
            tx.execute("DELETE FROM workflows WHERE id = $1", &[id.into()])?;
            Ok(())
        })
        .await
    }

    /// By name by default.
    pub async fn list_workflows(&self, filter: WorkflowFilter, page: PageRequest) -> Result<Page<Workflow>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "name", "w.id")?;
            if let Some(enabled) = filter.enabled {
                let p = q.param(enabled);
                q.condition(format!("w.enabled = {p}"));
            }
            let rows = tx.query(&q.sql(SELECT, FROM), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}

fn insert_version(
    tx: &mut dyn Tx,
    id: Uuid,
    version: i64,
    spec: &WorkflowSpec,
    caller: Option<Uuid>,
    now: Timestamp,
) -> Result<()> {
    let doc = serde_json::to_value(spec).map_err(|e| StoreError::Database(format!("workflow document: {e}")))?;
    tx.execute(
        "INSERT INTO workflow_versions (workflow_id, version, spec, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[id.into(), version.into(), Value::Json(doc), caller.into(), now.into()],
    )?;
    Ok(())
}

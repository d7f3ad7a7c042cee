//! Figures about automation for the pages that list it: per workflow, how many runs started
//! lately and how many are still going; a workflow's latest runs; a user's unread
//! notifications.

use std::collections::HashMap;

use rapport_core::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use super::runs::describe_cause;
use crate::{Result, Store};

/// How busy one workflow is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowRunStats {
    pub workflow_id: Uuid,
    /// Runs started in the period asked about (ended ones included).
    pub started: i64,
    /// Runs still going: ready for their next step or waiting.
    pub active: i64,
    /// When its latest run started, ever.
    pub last_started_at: Option<Timestamp>,
}

/// One run of a workflow, as its page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowRunRow {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub contact_name: String,
    /// `ready`, `waiting`, `done`, `exited`, `failed` or `cancelled`.
    pub status: String,
    /// What started it, in words.
    pub reason: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub end_reason: Option<String>,
}

impl Store {
    /// For every workflow (those that never ran too), in id order: runs started in the last
    /// `days` days, runs in flight, and when the latest started. Each figure is an index
    /// probe per workflow; the runs in flight are read from the partial index of active runs.
    pub async fn workflow_run_stats(&self, days: u32) -> Result<Vec<WorkflowRunStats>> {
        let since = self.now() - chrono::Duration::days(i64::from(days));
        self.read(move |tx| {
            let mut stats = tx
                .query(
                    "SELECT w.id, \
                     (SELECT COUNT(*) FROM workflow_runs r WHERE r.workflow_id = w.id AND r.started_at >= $1), \
                     (SELECT MAX(r.started_at) FROM workflow_runs r WHERE r.workflow_id = w.id) \
                     FROM workflows w ORDER BY w.id",
                    &[since.into()],
                )?
                .into_iter()
                .map(|r| {
                    Ok(WorkflowRunStats {
                        workflow_id: r.uuid(0)?,
                        started: r.i64(1)?,
                        active: 0,
                        last_started_at: r.opt_time(2)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let active = tx
                .query(
                    "SELECT workflow_id, COUNT(*) FROM workflow_runs WHERE status IN ('ready', 'waiting') GROUP BY workflow_id",
                    &[],
                )?
                .into_iter()
                .map(|r| Ok((r.uuid(0)?, r.i64(1)?)))
                .collect::<Result<HashMap<Uuid, i64>>>()?;
            for s in &mut stats {
                s.active = active.get(&s.workflow_id).copied().unwrap_or(0);
            }
            Ok(stats)
        })
        .await
    }

    /// A workflow's latest runs, newest first (at most `limit`).
    pub async fn workflow_runs(&self, workflow_id: Uuid, limit: usize) -> Result<Vec<WorkflowRunRow>> {
        self.read(move |tx| {
            tx.query(
                &format!(
                    "SELECT r.id, r.contact_id, c.display_name, r.status, r.cause, r.started_at, r.ended_at, r.end_reason \
                     FROM workflow_runs r JOIN contacts c ON c.id = r.contact_id WHERE r.workflow_id = $1 \
                     ORDER BY r.started_at DESC, r.id DESC LIMIT {limit}"
                ),
                &[workflow_id.into()],
            )?
            .into_iter()
            .map(|r| {
                Ok(WorkflowRunRow {
                    id: r.uuid(0)?,
                    contact_id: r.uuid(1)?,
                    contact_name: r.string(2)?,
                    status: r.string(3)?,
                    reason: describe_cause(&r.json(4)?),
                    started_at: r.time(5)?,
                    ended_at: r.opt_time(6)?,
                    end_reason: r.opt_string(7)?,
                })
            })
            .collect()
        })
        .await
    }

    /// How many of the user's notifications are unread, counting no further than `cap` (a
    /// badge says "99+" rather than counting thousands on every page).
    pub async fn unread_notification_count(&self, user_id: Uuid, cap: u32) -> Result<i64> {
        self.read_point(move |tx| {
            tx.query_one(
                &format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM notifications WHERE user_id = $1 AND read_at IS NULL LIMIT {cap}) n"
                ),
                &[user_id.into()],
            )?
            .i64(0)
        })
        .await
    }
}

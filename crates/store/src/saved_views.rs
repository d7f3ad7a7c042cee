//! Saved views: a named list query (e.g. "Gold customers in Manila") that a user keeps for a
//! page of the UI.

use rapport_core::{Timestamp, new_id};
use serde::Serialize;
use uuid::Uuid;

use crate::value::Row;
use crate::{Result, Store, StoreError};

/// Most views one user keeps per page.
pub const MAX_VIEWS_PER_PAGE: i64 = 50;

#[derive(Debug, Clone, Serialize)]
pub struct SavedView {
    pub id: Uuid,
    /// The page it belongs to, e.g. `contacts`.
    pub page: String,
    pub name: String,
    /// The list's query string, without `?`.
    pub query: String,
    pub created_at: Timestamp,
}

fn map_row(r: Row) -> Result<SavedView> {
    Ok(SavedView { id: r.uuid(0)?, page: r.string(1)?, name: r.string(2)?, query: r.string(3)?, created_at: r.time(4)? })
}

impl Store {
    /// A user's views of `page`, by name.
    pub async fn saved_views(&self, user_id: Uuid, page: String) -> Result<Vec<SavedView>> {
        self.read_point(move |tx| {
            tx.query(
                "SELECT id, page, name, query, created_at FROM saved_views WHERE user_id = $1 AND page = $2 ORDER BY name_key",
                &[user_id.into(), page.into()],
            )?
            .into_iter()
            .map(map_row)
            .collect()
        })
        .await
    }

    /// Saves a view; a view of the same name (any case) is replaced.
    pub async fn save_view(&self, user_id: Uuid, page: String, name: String, query: String) -> Result<SavedView> {
        let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() || name.chars().count() > 80 {
            return Err(StoreError::invalid("name", "a view needs a name of 1 to 80 characters"));
        }
        if query.len() > 4000 {
            return Err(StoreError::invalid("query", "is longer than 4000 characters"));
        }
        let now = self.now();
        self.write(move |tx| {
            let key = name.to_lowercase();
            tx.execute(
                "DELETE FROM saved_views WHERE user_id = $1 AND page = $2 AND name_key = $3",
                &[user_id.into(), page.as_str().into(), key.as_str().into()],
            )?;
            let n = tx
                .query_one("SELECT COUNT(*) FROM saved_views WHERE user_id = $1 AND page = $2", &[user_id.into(), page.as_str().into()])?
                .i64(0)?;
            if n >= MAX_VIEWS_PER_PAGE {
                return Err(StoreError::invalid("name", format!("you have {n} saved views here; delete one first")));
            }
            let id = new_id();
            tx.execute(
                "INSERT INTO saved_views (id, user_id, page, name, name_key, query, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[id.into(), user_id.into(), page.as_str().into(), name.as_str().into(), key.into(), query.as_str().into(), now.into()],
            )?;
            Ok(SavedView { id, page, name, query, created_at: now })
        })
        .await
    }

    /// Deletes one of the user's views.
    pub async fn delete_view(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            match tx.execute("DELETE FROM saved_views WHERE id = $1 AND user_id = $2", &[id.into(), user_id.into()])? {
                0 => Err(StoreError::not_found("saved view", id)),
                _ => Ok(()),
            }
        })
        .await
    }
}

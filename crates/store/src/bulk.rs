//! Changes to many contacts at once (the list's bulk actions): tag, untag, assign an owner.
//! Each runs in one transaction; ids that name no contact are reported, not fatal.

use rapport_core::Timestamp;
use rapport_core::tag::TagName;
use serde::Serialize;
use uuid::Uuid;

use crate::common::{check_user, resolve_tags};
use crate::db::{Tx, select_in};
use crate::value::Value;
use crate::{Result, Store, StoreError, contacts};

/// Most contacts one bulk action changes.
pub const MAX_BULK: usize = 1000;

/// What a bulk action did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BulkReport {
    /// Contacts that changed.
    pub changed: usize,
    /// Contacts that already were as asked.
    pub unchanged: usize,
    /// Ids that name no contact (deleted meanwhile).
    pub missing: Vec<Uuid>,
}

fn check_ids(ids: &mut Vec<Uuid>) -> Result<()> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(StoreError::invalid("ids", "select at least one contact"));
    }
    if ids.len() > MAX_BULK {
        return Err(StoreError::invalid("ids", format!("at most {MAX_BULK} contacts at once")));
    }
    Ok(())
}

/// The ids of `ids` that exist, and those that do not.
fn existing(tx: &mut dyn Tx, ids: &[Uuid]) -> Result<(Vec<Uuid>, Vec<Uuid>)> {
    let keys: Vec<Value> = ids.iter().copied().map(Value::Uuid).collect();
    let mut found: Vec<Uuid> = select_in(tx, "SELECT id FROM contacts WHERE id IN ({in})", &[], &keys)?
        .iter()
        .map(|r| r.uuid(0))
        .collect::<Result<_>>()?;
    found.sort_unstable();
    let missing = ids.iter().filter(|id| found.binary_search(id).is_err()).copied().collect();
    Ok((found, missing))
}

/// Runs `sql` (with `{in}` where the id list goes, after `extra` parameters) over `ids` in
/// chunks; returns the rows changed.
pub(crate) fn execute_in(tx: &mut dyn Tx, sql: &str, extra: &[Value], ids: &[Uuid]) -> Result<u64> {
    let mut n = 0;
    for chunk in ids.chunks(256) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", extra.len() + i + 1)).collect();
        let mut params = extra.to_vec();
        params.extend(chunk.iter().copied().map(Value::Uuid));
        n += tx.execute(&sql.replace("{in}", &list.join(", ")), &params)?;
    }
    Ok(n)
}

/// After a change to contact rows or their tags: the stored child lists, `updated_at`, and the
/// segment queue.
pub(crate) fn touch(tx: &mut dyn Tx, ids: &[Uuid], now: Timestamp, children: bool) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    if children {
        let sql = contacts::refresh_children_sql(tx.dialect(), "id IN ({in})");
        execute_in(tx, &sql, &[], ids)?;
    }
    execute_in(tx, "UPDATE contacts SET updated_at = $1 WHERE id IN ({in})", &[now.into()], ids)?;
    crate::segments::mark_dirty(tx, ids, now)
}

impl Store {
    /// Adds (`add`) or removes a tag on many contacts. Adding creates the tag when new.
    pub async fn tag_contacts(&self, mut ids: Vec<Uuid>, tag: String, add: bool) -> Result<BulkReport> {
        check_ids(&mut ids)?;
        let name = TagName::parse(&tag).map_err(|m| StoreError::invalid("tag", m))?;
        let now = self.now();
        self.write(move |tx| {
            let (found, missing) = existing(tx, &ids)?;
            let tag_id = if add {
                resolve_tags(tx, std::slice::from_ref(&name), now)?.first().copied()
            } else {
                tx.query_opt("SELECT id FROM tags WHERE name_key = $1", &[name.key().into()])?.map(|r| r.uuid(0)).transpose()?
            };
            let Some(tag_id) = tag_id else {
                return Ok(BulkReport { changed: 0, unchanged: found.len(), missing });
            };
            let keys: Vec<Value> = found.iter().copied().map(Value::Uuid).collect();
            let mut had: Vec<Uuid> = select_in(
                tx,
                "SELECT contact_id FROM contact_tags WHERE tag_id = $1 AND contact_id IN ({in})",
                &[tag_id.into()],
                &keys,
            )?
            .iter()
            .map(|r| r.uuid(0))
            .collect::<Result<_>>()?;
            had.sort_unstable();
            let changing: Vec<Uuid> = found.iter().filter(|id| (had.binary_search(id).is_ok()) != add).copied().collect();
            if add {
                for id in &changing {
                    tx.execute("INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2)", &[(*id).into(), tag_id.into()])?;
                }
            } else {
                execute_in(
                    tx,
                    "DELETE FROM contact_tags WHERE tag_id = $1 AND contact_id IN ({in})",
                    &[tag_id.into()],
                    &changing,
                )?;
            }
            touch(tx, &changing, now, true)?;
            Ok(BulkReport { changed: changing.len(), unchanged: found.len() - changing.len(), missing })
        })
        .await
    }

    /// Makes `owner` (or nobody) the owner of many contacts.
    pub async fn assign_owner(&self, mut ids: Vec<Uuid>, owner: Option<Uuid>) -> Result<BulkReport> {
        check_ids(&mut ids)?;
        let now = self.now();
        self.write(move |tx| {
            check_user(tx, owner, "owner_id")?;
            let (found, missing) = existing(tx, &ids)?;
            let keys: Vec<Value> = found.iter().copied().map(Value::Uuid).collect();
            let mut same: Vec<Uuid> = select_in(tx, "SELECT id, owner_id FROM contacts WHERE id IN ({in})", &[], &keys)?
                .iter()
                .filter_map(|r| match r.opt_uuid(1) {
                    Ok(current) if current == owner => Some(r.uuid(0)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_>>()?;
            same.sort_unstable();
            let changing: Vec<Uuid> = found.iter().filter(|id| same.binary_search(id).is_err()).copied().collect();
            execute_in(tx, "UPDATE contacts SET owner_id = $1 WHERE id IN ({in})", &[owner.into()], &changing)?;
            touch(tx, &changing, now, false)?;
            Ok(BulkReport { changed: changing.len(), unchanged: found.len() - changing.len(), missing })
        })
        .await
    }
}

//! The figures of the UI's dashboard, read in one snapshot with a handful of indexed queries.

use rapport_core::Timestamp;
use rapport_core::profile::LifecycleStage;
use serde::Serialize;
use uuid::Uuid;

use crate::{Result, Store};

/// What the dashboard shows.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub contacts: i64,
    pub companies: i64,
    pub segments: i64,
    /// Contacts owned by the user asking.
    pub my_contacts: i64,
    /// Contacts created in the last 30 days.
    pub new_contacts_30d: i64,
    /// Contacts per lifecycle stage, in the order of [`LifecycleStage::ALL`] (people with no
    /// events yet are leads).
    pub stages: Vec<(LifecycleStage, i64)>,
    /// Contacts per value tier, in the configured tier order; people with no purchases last,
    /// as `None`.
    pub tiers: Vec<(Option<String>, i64)>,
    /// The people seen most recently.
    pub recently_active: Vec<RecentContact>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecentContact {
    pub id: Uuid,
    pub display_name: String,
    pub last_seen_at: Timestamp,
    pub lifecycle_stage: String,
    pub value_tier: Option<String>,
}

impl Store {
    /// The dashboard for `user_id`.
    pub async fn dashboard(&self, user_id: Option<Uuid>, recent: u32) -> Result<Dashboard> {
        let now = self.now();
        let tier_names: Vec<String> = self.options().profile_rules.tiers.iter().map(|t| t.name.clone()).collect();
        self.read(move |tx| {
            let count = |tx: &mut dyn crate::db::Tx, sql: &str, params: &[crate::value::Value]| -> Result<i64> {
                tx.query_one(sql, params)?.i64(0)
            };
            let contacts = count(tx, "SELECT COUNT(*) FROM contacts", &[])?;
            let companies = count(tx, "SELECT COUNT(*) FROM companies", &[])?;
            let segments = count(tx, "SELECT COUNT(*) FROM segments", &[])?;
            let my_contacts = match user_id {
                Some(u) => count(tx, "SELECT COUNT(*) FROM contacts WHERE owner_id = $1", &[u.into()])?,
                None => 0,
            };
            let new_contacts_30d =
                count(tx, "SELECT COUNT(*) FROM contacts WHERE created_at >= $1", &[(now - chrono::Duration::days(30)).into()])?;

            let mut stages: Vec<(LifecycleStage, i64)> = LifecycleStage::ALL.iter().map(|s| (*s, 0)).collect();
            let mut profiled = 0;
            for r in tx.query("SELECT lifecycle_stage, COUNT(*) FROM profiles GROUP BY lifecycle_stage", &[])? {
                let n = r.i64(1)?;
                profiled += n;
                if let Some(stage) = LifecycleStage::parse(&r.string(0)?)
                    && let Some(slot) = stages.iter_mut().find(|(s, _)| *s == stage)
                {
                    slot.1 += n;
                }
            }
            // Contacts without a profile row have no events: leads.
            if let Some(lead) = stages.iter_mut().find(|(s, _)| *s == LifecycleStage::Lead) {
                lead.1 += (contacts - profiled).max(0);
            }

            let mut tiers: Vec<(Option<String>, i64)> = tier_names.iter().map(|t| (Some(t.clone()), 0)).collect();
            let mut tiered = 0;
            for r in
                tx.query("SELECT value_tier, COUNT(*) FROM profiles WHERE value_tier IS NOT NULL GROUP BY value_tier", &[])?
            {
                let (name, n) = (r.string(0)?, r.i64(1)?);
                tiered += n;
                match tiers.iter_mut().find(|(t, _)| t.as_deref() == Some(name.as_str())) {
                    Some(slot) => slot.1 += n,
                    // A tier no longer configured still shows, after the configured ones.
                    None => tiers.push((Some(name), n)),
                }
            }
            tiers.push((None, (contacts - tiered).max(0)));

            let recently_active = tx
                .query(
                    "SELECT c.id, c.display_name, p.last_seen_at, p.lifecycle_stage, p.value_tier \
                     FROM profiles p JOIN contacts c ON c.id = p.contact_id \
                     WHERE p.last_seen_at IS NOT NULL AND p.last_seen_at <= $1 \
                     ORDER BY p.last_seen_at DESC, c.id LIMIT $2",
                    &[now.into(), i64::from(recent.min(100)).into()],
                )?
                .into_iter()
                .map(|r| {
                    Ok(RecentContact {
                        id: r.uuid(0)?,
                        display_name: r.string(1)?,
                        last_seen_at: r.time(2)?,
                        lifecycle_stage: r.string(3)?,
                        value_tier: r.opt_string(4)?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(Dashboard { contacts, companies, segments, my_contacts, new_contacts_30d, stages, tiers, recently_active })
        })
        .await
    }
}

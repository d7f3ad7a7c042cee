//! The global search of the UI: people and companies by part of a name, an email address, the
//! digits of a phone number, or the name of a company they work at.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::decode_json;
use crate::list::contains_pattern;
use crate::{Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    Contact,
    Company,
}

/// One thing the search found.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub kind: HitKind,
    pub id: Uuid,
    /// The name to show.
    pub title: String,
    /// What else identifies it: the matching phone or email, the company, the domain.
    pub detail: Option<String>,
}

/// The part of `contacts.children` the search shows.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Children {
    emails: Vec<Email>,
    phones: Vec<Phone>,
}

#[derive(Deserialize)]
struct Email {
    address: String,
}

#[derive(Deserialize)]
struct Phone {
    number: String,
    e164: String,
}

/// Phone digits are only searched from three digits on: fewer match nearly everyone.
const MIN_PHONE_DIGITS: usize = 3;

impl Store {
    /// Up to `limit` contacts and up to `limit` companies matching `q`, names starting with
    /// `q` first. A `q` of fewer than two characters (and fewer than three digits) finds nothing.
    pub async fn search(&self, q: String, limit: u32) -> Result<Vec<SearchHit>> {
        let q = q.trim().to_string();
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        let phone = digits.len() >= MIN_PHONE_DIGITS;
        if q.chars().count() < 2 && !phone {
            return Ok(Vec::new());
        }
        let limit = limit.clamp(1, 50);
        let pattern = contains_pattern(&q);
        let prefix = format!("{}%", crate::list::like_escape(&q.to_lowercase()));
        self.read(move |tx| {
            // Phone digits are matched only when the text looks like a number, so that "ana 2"
            // does not match every phone with a 2.
            let looks_like_phone = phone && q.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
            let phone_ids =
                if looks_like_phone { "UNION SELECT p.contact_id FROM contact_phones p WHERE p.digits LIKE $4" } else { "" };
            // The matching ids are gathered first (one scan per table, no query per contact),
            // then cut to a page, and only the page looks up its company: a cheap plan that
            // stays clear of PostgreSQL's JIT threshold.
            let sql = format!(
                "SELECT c.id, c.display_name, c.children, \
                   (SELECT co.name FROM contact_companies l JOIN companies co ON co.id = l.company_id \
                     WHERE l.contact_id = c.id ORDER BY l.is_primary DESC, l.created_at LIMIT 1) \
                 FROM (SELECT c.id, c.display_name, c.children, c.name_key FROM contacts c WHERE c.id IN ( \
                         SELECT x.id FROM contacts x WHERE x.name_key LIKE $1 ESCAPE '\\' \
                         UNION SELECT e.contact_id FROM contact_emails e WHERE e.address LIKE $1 ESCAPE '\\' \
                         UNION SELECT l.contact_id FROM contact_companies l JOIN companies co ON co.id = l.company_id \
                               WHERE co.name_key LIKE $1 ESCAPE '\\' \
                         {phone_ids}) \
                       ORDER BY CASE WHEN c.name_key LIKE $2 ESCAPE '\\' THEN 0 ELSE 1 END, c.name_key, c.id LIMIT $3) c \
                 ORDER BY CASE WHEN c.name_key LIKE $2 ESCAPE '\\' THEN 0 ELSE 1 END, c.name_key, c.id"
            );
            let mut params = vec![pattern.clone().into(), prefix.clone().into(), i64::from(limit).into()];
            if looks_like_phone {
                params.push(format!("%{digits}%").into());
            }
            let mut hits = Vec::new();
            let needle = q.to_lowercase();
            for r in tx.query(&sql, &params)? {
                let children: Children = decode_json(&r, 2)?;
                let company = r.opt_string(3)?;
                let matching_phone = looks_like_phone
                    .then(|| {
                        children
                            .phones
                            .iter()
                            .find(|p| p.e164.chars().filter(char::is_ascii_digit).collect::<String>().contains(&digits))
                    })
                    .flatten()
                    .map(|p| p.number.clone());
                let matching_email = children.emails.iter().find(|e| e.address.contains(&needle)).map(|e| e.address.clone());
                let first_email = children.emails.first().map(|e| e.address.clone());
                let detail =
                    [matching_phone.or(matching_email).or(first_email), company].into_iter().flatten().collect::<Vec<_>>();
                hits.push(SearchHit {
                    kind: HitKind::Contact,
                    id: r.uuid(0)?,
                    title: r.string(1)?,
                    detail: if detail.is_empty() { None } else { Some(detail.join(" · ")) },
                });
            }
            let rows = tx.query(
                "SELECT co.id, co.name, co.domain, co.industry FROM companies co \
                 WHERE co.name_key LIKE $1 ESCAPE '\\' OR co.domain LIKE $1 ESCAPE '\\' \
                 ORDER BY CASE WHEN co.name_key LIKE $2 ESCAPE '\\' THEN 0 ELSE 1 END, co.name_key, co.id LIMIT $3",
                &[pattern.into(), prefix.into(), i64::from(limit).into()],
            )?;
            for r in rows {
                let detail = [r.opt_string(2)?, r.opt_string(3)?].into_iter().flatten().collect::<Vec<_>>();
                hits.push(SearchHit {
                    kind: HitKind::Company,
                    id: r.uuid(0)?,
                    title: r.string(1)?,
                    detail: if detail.is_empty() { None } else { Some(detail.join(" · ")) },
                });
            }
            Ok(hits)
        })
        .await
    }
}

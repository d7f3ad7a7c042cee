//! API keys: created with a random secret that is shown once; stored as a SHA-256 digest.

use rapport_core::key::{ApiKey, display_prefix, format_key};
use rapport_core::user::Role;
use rapport_core::{Timestamp, new_id};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

/// A freshly created key: the secret is only ever available here.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Who is calling, once a bearer key checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatedKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub user_id: Option<Uuid>,
}

const SELECT: &str = "SELECT id, name, role, prefix, user_id, created_at, last_used_at, revoked_at FROM api_keys";

fn map_row(r: Row) -> Result<ApiKey> {
    let role = r.string(2)?;
    Ok(ApiKey {
        id: r.uuid(0)?,
        name: r.string(1)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Database(format!("unknown role {role}")))?,
        prefix: r.string(3)?,
        user_id: r.opt_uuid(4)?,
        created_at: r.time(5)?,
        last_used_at: r.opt_time(6)?,
        revoked_at: r.opt_time(7)?,
    })
}

pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom_fill(&mut bytes)?;
    Ok(format_key(&bytes))
}

fn getrandom_fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| StoreError::Unavailable(format!("the operating system has no randomness to give: {e}")))
}

impl Store {
    /// Creates a key and returns its secret. With `only_if_none`, does nothing (returns None)
    /// when any key exists already: the bootstrap path.
    pub async fn create_key(
        &self,
        name: String,
        role: Role,
        user_id: Option<Uuid>,
        secret: Option<String>,
        only_if_none: bool,
    ) -> Result<Option<NewKey>> {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::invalid("name", "a key needs a name of 1 to 100 characters"));
        }
        let secret = match secret {
            Some(s) if s.len() >= 32 => s,
            Some(_) => return Err(StoreError::invalid("key", "a supplied key must be at least 32 characters")),
            None => random_secret()?,
        };
        let now = self.now();
        self.write(move |tx| {
            if only_if_none && tx.exists("SELECT 1 FROM api_keys", &[])? {
                return Ok(None);
            }
            if let Some(u) = user_id {
                crate::common::check_user(tx, Some(u), "user_id")?;
            }
            let id = new_id();
            tx.execute(
                "INSERT INTO api_keys (id, name, role, prefix, key_hash, user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[id.into(), name.as_str().into(), role.as_str().into(), display_prefix(&secret).into(), Value::Bytes(hash_key(&secret)), user_id.into(), now.into()],
            )?;
            let key = map_row(tx.query_one(&format!("{SELECT} WHERE id = $1"), &[id.into()])?)?;
            Ok(Some(NewKey { key, secret }))
        })
        .await
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|tx| tx.query(&format!("{SELECT} ORDER BY created_at"), &[])?.into_iter().map(map_row).collect()).await
    }

    /// Revokes a key by id or by its displayed prefix.
    pub async fn revoke_key(&self, id_or_prefix: String) -> Result<ApiKey> {
        let now = self.now();
        self.write(move |tx| {
            let row = match Uuid::parse_str(&id_or_prefix) {
                Ok(id) => tx.query_opt(&format!("{SELECT} WHERE id = $1"), &[id.into()])?,
                Err(_) => {
                    let rows = tx.query(&format!("{SELECT} WHERE prefix = $1"), &[id_or_prefix.as_str().into()])?;
                    if rows.len() > 1 {
                        return Err(StoreError::conflict("key", "several keys share this prefix; revoke by id"));
                    }
                    rows.into_iter().next()
                }
            };
            let key = map_row(row.ok_or_else(|| StoreError::not_found("key", &id_or_prefix))?)?;
            tx.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[key.id.into(), now.into()])?;
            map_row(tx.query_one(&format!("{SELECT} WHERE id = $1"), &[key.id.into()])?)
        })
        .await
    }

    /// Looks a presented secret up; `None` when unknown or revoked.
    pub async fn authenticate_key(&self, secret: String) -> Result<Option<AuthenticatedKey>> {
        let digest = hash_key(&secret);
        self.read_point(move |tx| {
            let row = tx.query_opt(
                "SELECT id, name, role, user_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                &[Value::Bytes(digest)],
            )?;
            row.map(|r| {
                let role = r.string(2)?;
                Ok(AuthenticatedKey {
                    id: r.uuid(0)?,
                    name: r.string(1)?,
                    role: Role::parse(&role).ok_or_else(|| StoreError::Database(format!("unknown role {role}")))?,
                    user_id: r.opt_uuid(3)?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Records that a key was used (called at most every few minutes per key).
    pub async fn touch_key(&self, id: Uuid, at: Timestamp) -> Result<()> {
        self.write(move |tx| {
            tx.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", &[id.into(), at.into()]).map(|_| ())
        })
        .await
    }
}

impl Store {
    /// The secret named `name`, made (32 random bytes) the first time it is asked for. Every
    /// instance gets the same one, so a link signed by one is accepted by another.
    pub async fn app_secret(&self, name: &'static str) -> Result<Vec<u8>> {
        let store = self.clone();
        self.write(move |tx| {
            let mut fresh = [0u8; 32];
            getrandom_fill(&mut fresh)?;
            tx.execute(
                "INSERT INTO app_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                &[name.into(), Value::Bytes(fresh.to_vec()), store.now().into()],
            )?;
            tx.query_one("SELECT value FROM app_secrets WHERE name = $1", &[name.into()])?.bytes(0)
        })
        .await
    }
}

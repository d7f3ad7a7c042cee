//! Bearer-key authentication for `/api/v1`, and the role checks handlers make.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use rapport_core::user::Role;
use rapport_store::AuthenticatedKey;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// How long a checked key is trusted without asking the database again. Revoking a key takes
/// effect on every instance within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Recently checked keys by the SHA-256 of the presented secret (the secret is not kept).
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], (AuthenticatedKey, Instant)>>,
}

impl KeyCache {
    fn get(&self, digest: &[u8; 32]) -> Option<AuthenticatedKey> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(digest).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(k, _)| k.clone())
    }

    fn put(&self, digest: [u8; 32], key: AuthenticatedKey) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        map.insert(digest, (key, Instant::now()));
    }

    /// Forgets every key (after a revocation in this process).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Who is calling: the key and its role. Handlers take it as an argument.
#[derive(Debug, Clone)]
pub struct Caller(pub AuthenticatedKey);

impl Caller {
    pub fn key_id(&self) -> Uuid {
        self.0.id
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.0.user_id
    }

    fn require(&self, ok: bool, what: &str) -> Result<(), ApiError> {
        if ok {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this key has the {} role, which cannot {what}", self.0.role.as_str())))
        }
    }

    /// Contacts, companies, notes, tags, relations.
    pub fn can_write(&self) -> Result<(), ApiError> {
        self.require(self.0.role.can_write_records(), "change records")
    }

    /// The custom field catalogue.
    pub fn can_manage_catalogue(&self) -> Result<(), ApiError> {
        self.require(self.0.role.can_manage_catalogue(), "change custom field definitions (manager or admin needed)")
    }

    /// Workflows: they act on customers, so managers and admins only.
    pub fn can_manage_automation(&self) -> Result<(), ApiError> {
        self.require(self.0.role.can_manage_catalogue(), "change workflows (manager or admin needed)")
    }

    /// Users and keys.
    pub fn can_manage_users(&self) -> Result<(), ApiError> {
        self.require(self.0.role == Role::Admin, "manage users (admin needed)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("no API key was checked for this route".into()))
    }
}

/// Middleware: every request must carry `Authorization: Bearer <key>` of a live key.
pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let header = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("send an API key as Authorization: Bearer <key> (create one with `rapport keys create`)".into())
    })?;
    let value = header.to_str().map_err(|_| ApiError::Unauthorized("the Authorization header is not readable text".into()))?;
    let secret = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() => rest.trim(),
        _ => return Err(ApiError::Unauthorized("the Authorization header must be `Bearer <key>`".into())),
    };
    let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let key = match state.keys.get(&digest) {
        Some(k) => k,
        None => {
            let found = state.store.authenticate_key(secret.to_string()).await?;
            let key = found.ok_or_else(|| ApiError::Unauthorized("this API key is unknown or revoked".into()))?;
            state.keys.put(digest, key.clone());
            // Recorded off the request path; at most once per cache period per key.
            let store = state.store.clone();
            let (id, at) = (key.id, store.now());
            tokio::spawn(async move {
                if let Err(e) = store.touch_key(id, at).await {
                    tracing::debug!(error = %e, "could not record key use");
                }
            });
            key
        }
    };
    req.extensions_mut().insert(Caller(key));
    Ok(next.run(req).await)
}

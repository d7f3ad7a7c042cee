//! Sign-in sessions of the web UI. A session is created with a random token that goes to the
//! browser in a cookie; only the token's SHA-256 is stored. Each session has its own CSRF
//! token, which every state-changing form must echo.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use rapport_core::Timestamp;
use rapport_core::user::User;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::value::Value;
use crate::{Result, Store, StoreError, users};

/// A session just created: the token for the cookie (shown nowhere else) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
}

/// A live session, found by its token.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session unused for this long has ended.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub max_age: Duration,
}

/// 32 random bytes as URL-safe base64 (43 characters).
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Unavailable(format!("the operating system has no randomness to give: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn token_hash(token: &str) -> Value {
    Value::Bytes(Sha256::digest(token.as_bytes()).to_vec())
}

impl Store {
    /// Starts a session for `user_id` (who must exist and be active).
    pub async fn create_session(&self, user_id: Uuid, user_agent: Option<String>) -> Result<NewSession> {
        let token = random_token()?;
        let csrf_token = random_token()?;
        let now = self.now();
        let agent = user_agent.map(|a| a.chars().take(300).collect::<String>());
        let (hash, csrf) = (token_hash(&token), csrf_token.clone());
        self.write(move |tx| {
            if !tx.exists("SELECT 1 FROM users WHERE id = $1 AND active = $2", &[user_id.into(), true.into()])? {
                return Err(StoreError::invalid("user_id", "no active user has this id"));
            }
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, user_agent, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
                &[hash, user_id.into(), csrf.into(), agent.into(), now.into()],
            )?;
            Ok(())
        })
        .await?;
        Ok(NewSession { token, csrf_token })
    }

    /// The session of `token`, or `None` when it is unknown, has ended (idle or too old) or
    /// belongs to a user who is no longer active.
    pub async fn find_session(&self, token: String, limits: SessionLimits) -> Result<Option<Session>> {
        if token.is_empty() || token.len() > 100 {
            return Ok(None);
        }
        let now = self.now();
        let hash = token_hash(&token);
        self.read_point(move |tx| {
            let Some(r) = tx.query_opt(
                "SELECT s.user_id, s.csrf_token, s.created_at, s.last_seen_at FROM sessions s \
                 JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND u.active = $2 \
                 AND s.last_seen_at > $3 AND s.created_at > $4",
                &[hash, true.into(), (now - limits.idle).into(), (now - limits.max_age).into()],
            )?
            else {
                return Ok(None);
            };
            let user = users::load(tx, r.uuid(0)?)?;
            Ok(Some(Session { user, csrf_token: r.string(1)?, created_at: r.time(2)?, last_seen_at: r.time(3)? }))
        })
        .await
    }

    /// Records that the session was used now (keeps it from ending while in use).
    pub async fn touch_session(&self, token: String) -> Result<()> {
        let now = self.now();
        let hash = token_hash(&token);
        self.write(move |tx| {
            tx.execute("UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1", &[hash, now.into()]).map(|_| ())
        })
        .await
    }

    /// Ends a session (sign-out). Unknown tokens are ignored.
    pub async fn delete_session(&self, token: String) -> Result<()> {
        let hash = token_hash(&token);
        self.write(move |tx| tx.execute("DELETE FROM sessions WHERE token_hash = $1", &[hash]).map(|_| ())).await
    }

    /// Ends every session of a user (after a password change or deactivation).
    pub async fn delete_user_sessions(&self, user_id: Uuid) -> Result<u64> {
        self.write(move |tx| tx.execute("DELETE FROM sessions WHERE user_id = $1", &[user_id.into()])).await
    }

    /// Deletes sessions that have ended; returns how many.
    pub async fn purge_sessions(&self, limits: SessionLimits) -> Result<u64> {
        let now = self.now();
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM sessions WHERE last_seen_at <= $1 OR created_at <= $2",
                &[(now - limits.idle).into(), (now - limits.max_age).into()],
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rapport_core::ManualClock;
    use rapport_core::user::{Role, UserDraft, UserPatch};

    use super::*;
    use crate::{DatabaseUrl, StoreOptions};

    #[tokio::test]
    async fn sessions_end_when_idle_old_deleted_or_the_user_is_inactive() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let store = Store::open(
            &DatabaseUrl::Sqlite(dir.path().join("t.db")),
            StoreOptions { clock: clock.clone(), ..StoreOptions::default() },
        )
        .unwrap();
        let draft = |email: &str, role| UserDraft {
            name: Some("Ana".into()),
            email: Some(email.into()),
            role: Some(role),
            active: Some(true),
        };
        let admin = store.create_user_with_password(draft("a@x.example", Role::Admin), "h".into()).await.unwrap();
        let user = store.create_user_with_password(draft("b@x.example", Role::Member), "h".into()).await.unwrap();
        let limits = SessionLimits { idle: Duration::hours(1), max_age: Duration::days(1) };

        let s = store.create_session(user.id, Some("test".into())).await.unwrap();
        let found = store.find_session(s.token.clone(), limits).await.unwrap().expect("live session");
        assert_eq!((found.user.id, found.csrf_token.as_str()), (user.id, s.csrf_token.as_str()));
        assert!(store.find_session("nope".into(), limits).await.unwrap().is_none());

        // Used within the idle time, it lives on; unused for longer, it ends.
        clock.advance(Duration::minutes(50));
        store.touch_session(s.token.clone()).await.unwrap();
        clock.advance(Duration::minutes(50));
        assert!(store.find_session(s.token.clone(), limits).await.unwrap().is_some());
        clock.advance(Duration::minutes(61));
        assert!(store.find_session(s.token.clone(), limits).await.unwrap().is_none());
        assert_eq!(store.purge_sessions(limits).await.unwrap(), 1);

        // However busy, a session ends at its maximum age.
        let s = store.create_session(user.id, None).await.unwrap();
        for _ in 0..25 {
            clock.advance(Duration::minutes(59));
            store.touch_session(s.token.clone()).await.unwrap();
        }
        assert!(store.find_session(s.token.clone(), limits).await.unwrap().is_none());

        // Deleted, or the user deactivated.
        let s = store.create_session(user.id, None).await.unwrap();
        store.delete_session(s.token.clone()).await.unwrap();
        assert!(store.find_session(s.token, limits).await.unwrap().is_none());
        let s = store.create_session(user.id, None).await.unwrap();
        store.update_user(user.id, UserPatch { active: Some(false), ..Default::default() }).await.unwrap();
        assert!(store.find_session(s.token, limits).await.unwrap().is_none());
        assert!(store.create_session(user.id, None).await.is_err());
        let _ = admin;
    }
}

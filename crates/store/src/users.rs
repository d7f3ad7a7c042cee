//! Users: the people who own records and (later) sign in.

use rapport_core::user::{Role, User, UserDraft, UserInput, UserPatch};
use rapport_core::{EmailAddress, new_id};
use uuid::Uuid;

use crate::db::Tx;
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind, contains_pattern};
use crate::value::Row;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Part of the name or email.
    pub q: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

const SORTS: &[SortField] = &[
    SortField { name: "name", expr: "u.name_key", kind: SortKind::Text },
    SortField { name: "created_at", expr: "u.created_at", kind: SortKind::Time },
];
const SELECT: &str = "SELECT u.id, u.name, u.email, u.role, u.active, u.created_at, u.updated_at";

fn map_row(r: Row) -> Result<User> {
    let role = r.string(3)?;
    Ok(User {
        id: r.uuid(0)?,
        name: r.string(1)?,
        email: EmailAddress::from_trusted(r.string(2)?),
        role: Role::parse(&role).ok_or_else(|| StoreError::Database(format!("unknown role {role}")))?,
        active: r.bool(4)?,
        created_at: r.time(5)?,
        updated_at: r.time(6)?,
    })
}

pub(crate) fn load(tx: &mut dyn Tx, id: Uuid) -> Result<User> {
    map_row(
        tx.query_opt(&format!("{SELECT} FROM users u WHERE u.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("user", id))?,
    )
}

fn check_email(tx: &mut dyn Tx, email: &EmailAddress, except: Uuid) -> Result<()> {
    if tx.exists("SELECT 1 FROM users WHERE email = $1 AND id <> $2", &[email.as_str().into(), except.into()])? {
        return Err(StoreError::conflict("email", format!("another user already has {email}")));
    }
    Ok(())
}

/// An admin must remain: refuses to demote or deactivate the last active admin.
fn check_last_admin(tx: &mut dyn Tx, current: &User, next_role: Role, next_active: bool) -> Result<()> {
    let was_admin = current.role == Role::Admin && current.active;
    let stays_admin = next_role == Role::Admin && next_active;
    if was_admin && !stays_admin {
        let others = tx
            .query_one(
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = $1 AND id <> $2",
                &[true.into(), current.id.into()],
            )?
            .i64(0)?;
        if others == 0 {
            return Err(StoreError::conflict("role", "this is the last active admin; make someone else admin first"));
        }
    }
    Ok(())
}

pub(crate) fn insert(
    tx: &mut dyn Tx,
    input: &UserInput,
    password_hash: Option<&str>,
    now: rapport_core::Timestamp,
) -> Result<User> {
    let id = new_id();
    check_email(tx, &input.email, id)?;
    tx.execute(
        "INSERT INTO users (id, name, name_key, email, role, active, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            id.into(),
            input.name.as_str().into(),
            input.name.to_lowercase().into(),
            input.email.as_str().into(),
            input.role.as_str().into(),
            input.active.into(),
            password_hash.into(),
            now.into(),
            now.into(),
        ],
    )?;
    load(tx, id)
}

impl Store {
    pub async fn create_user(&self, draft: UserDraft, idem: Option<IdempotencyKey>) -> Result<Created<User>> {
        let now = self.now();
        self.create_once(idem, move |tx| insert(tx, &UserInput::parse(draft)?, None, now)).await
    }

    /// Creates a user who can sign in; `password_hash` is a PHC string (argon2id).
    pub async fn create_user_with_password(&self, draft: UserDraft, password_hash: String) -> Result<User> {
        let now = self.now();
        self.write(move |tx| insert(tx, &UserInput::parse(draft)?, Some(&password_hash), now)).await
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn find_user_by_email(&self, email: EmailAddress) -> Result<Option<User>> {
        self.read(move |tx| {
            tx.query_opt(&format!("{SELECT} FROM users u WHERE u.email = $1"), &[email.as_str().into()])?.map(map_row).transpose()
        })
        .await
    }

    /// The user with `email` and their stored password hash (a PHC string; `None` when they
    /// cannot sign in with a password), for signing in.
    pub async fn find_login(&self, email: EmailAddress) -> Result<Option<(User, Option<String>)>> {
        self.read_point(move |tx| {
            let Some(r) =
                tx.query_opt(&format!("{SELECT}, u.password_hash FROM users u WHERE u.email = $1"), &[email.as_str().into()])?
            else {
                return Ok(None);
            };
            let hash = r.opt_string(7)?;
            Ok(Some((map_row(r)?, hash)))
        })
        .await
    }

    /// Sets (or, with `None`, removes) a user's password hash and ends their sessions.
    pub async fn set_user_password(&self, id: Uuid, password_hash: Option<String>) -> Result<()> {
        let now = self.now();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
                &[id.into(), password_hash.into(), now.into()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("user", id));
            }
            tx.execute("DELETE FROM sessions WHERE user_id = $1", &[id.into()])?;
            Ok(())
        })
        .await
    }

    /// Every user's id and name, by name: small enough to hold (owners in forms and lists).
    pub async fn user_names(&self) -> Result<Vec<(Uuid, String, bool)>> {
        self.read_point(|tx| {
            tx.query("SELECT id, name, active FROM users ORDER BY name_key, id", &[])?
                .into_iter()
                .map(|r| Ok((r.uuid(0)?, r.string(1)?, r.bool(2)?)))
                .collect()
        })
        .await
    }

    pub async fn update_user(&self, id: Uuid, patch: UserPatch) -> Result<User> {
        let now = self.now();
        self.write(move |tx| {
            let current = load(tx, id)?;
            let input = UserInput::patched(&current, patch)?;
            check_email(tx, &input.email, id)?;
            check_last_admin(tx, &current, input.role, input.active)?;
            tx.execute(
                "UPDATE users SET name = $2, name_key = $3, email = $4, role = $5, active = $6, updated_at = $7 WHERE id = $1",
                &[
                    id.into(),
                    input.name.as_str().into(),
                    input.name.to_lowercase().into(),
                    input.email.as_str().into(),
                    input.role.as_str().into(),
                    input.active.into(),
                    now.into(),
                ],
            )?;
            // Filters can name an owner by email or name.
            if input.email.as_str() != current.email.as_str() || input.name.as_str() != current.name.as_str() {
                crate::segments::mark_dirty_where(tx, "SELECT id FROM contacts WHERE owner_id = $1", &[id.into()], now)?;
            }
            load(tx, id)
        })
        .await
    }

    /// Deletes a user; their contacts, companies and notes stay, without an owner/author.
    pub async fn delete_user(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let current = load(tx, id)?;
            check_last_admin(tx, &current, Role::Viewer, false)?;
            tx.execute("DELETE FROM users WHERE id = $1", &[id.into()])?;
            Ok(())
        })
        .await
    }

    pub async fn list_users(&self, filter: UserFilter, page: PageRequest) -> Result<Page<User>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "name", "u.id")?;
            if let Some(text) = filter.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                let p = q.param(contains_pattern(text));
                q.condition(format!("(u.name_key LIKE {p} ESCAPE '\\' OR u.email LIKE {p} ESCAPE '\\')"));
            }
            if let Some(role) = filter.role {
                let p = q.param(role.as_str());
                q.condition(format!("u.role = {p}"));
            }
            if let Some(active) = filter.active {
                let p = q.param(active);
                q.condition(format!("u.active = {p}"));
            }
            let rows = tx.query(&q.sql(SELECT, "FROM users u"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}

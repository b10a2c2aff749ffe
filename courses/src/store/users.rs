//! User accounts.

use classroom_protocol::{UserId, UserRole};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::{Page, Paged, Store, contains_pattern, count, decode_err, fixed};
use crate::error::{StoreError, StoreResult, is_unique_violation};
use crate::model::{Email, PersonName, User, UserCredentials, from_millis, to_millis};

const USER_COLUMNS: &str = "id, email, name, role, disabled_at, created_at";

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub name: PersonName,
    pub role: UserRole,
    pub password_hash: String,
}

/// Filters of the user listing.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Matches anywhere in the email or the name, case-insensitively.
    pub query: Option<String>,
    pub role: Option<UserRole>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub name: Option<PersonName>,
    pub disabled: Option<bool>,
}

pub(super) fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: UserId(row.try_get("id")?),
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: UserRole::parse(&role).ok_or_else(|| decode_err("role", &role))?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        created_at: from_millis(row.try_get("created_at")?),
    })
}

fn credentials_from_row(row: &AnyRow) -> Result<UserCredentials, sqlx::Error> {
    Ok(UserCredentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        session_version: row.try_get("session_version")?,
    })
}

impl Store {
    pub async fn create_user(&self, new: NewUser, now: OffsetDateTime) -> StoreResult<User> {
        let now = to_millis(now);
        let sql = format!(
            "INSERT INTO users (email, name, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(new.email.as_str())
            .bind(new.name.as_str())
            .bind(new.role.as_str())
            .bind(new.password_hash)
            .bind(now)
            .fetch_one(self.db.pool())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::duplicate(
                        "email_taken",
                        format!(
                            "a user with the email {} already exists",
                            new.email.as_str()
                        ),
                    )
                } else {
                    e.into()
                }
            })?;
        Ok(user_from_row(&row)?)
    }

    /// Creates many users in one transaction: all of them, or none when the database fails
    /// (so an import cut short leaves nothing half-done). A user whose email is taken is
    /// skipped, not an error: their place in the answer is `None`.
    pub async fn create_users(
        &self,
        users: Vec<NewUser>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Option<User>>> {
        let now = to_millis(now);
        let sql = format!(
            "INSERT INTO users (email, name, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (email) DO NOTHING \
             RETURNING {USER_COLUMNS}"
        );
        let mut tx = self.db.pool().begin().await?;
        let mut created = Vec::with_capacity(users.len());
        for new in users {
            let row = sqlx::query(fixed(&sql))
                .bind(new.email.as_str())
                .bind(new.name.as_str())
                .bind(new.role.as_str())
                .bind(new.password_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            created.push(row.as_ref().map(user_from_row).transpose()?);
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn user(&self, id: UserId) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("user"))
    }

    pub async fn credentials_by_email(
        &self,
        email: &Email,
    ) -> StoreResult<Option<UserCredentials>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash, session_version FROM users WHERE email = $1"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(email.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.as_ref().map(credentials_from_row).transpose()?)
    }

    pub async fn credentials_by_id(&self, id: UserId) -> StoreResult<Option<UserCredentials>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash, session_version FROM users WHERE id = $1"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.as_ref().map(credentials_from_row).transpose()?)
    }

    /// Whether the school has an admin who can sign in (one not disabled): until it has,
    /// the first-run setup link may create one.
    pub async fn has_active_admin(&self) -> StoreResult<bool> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL")
                .fetch_one(self.db.pool())
                .await?;
        Ok(count(&row)? > 0)
    }

    pub async fn list_users(&self, filter: &UserFilter, page: Page) -> StoreResult<Paged<User>> {
        let query = filter.query.as_deref().map(str::trim).unwrap_or_default();
        let pattern = contains_pattern(query);
        let role = filter.role.map(UserRole::as_str).unwrap_or_default();
        let condition = "($1 = '' OR role = $1) \
             AND ($2 = '' OR LOWER(email) LIKE $3 ESCAPE '\\' OR LOWER(name) LIKE $3 ESCAPE '\\')";
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {condition} ORDER BY name, id LIMIT $4 OFFSET $5"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(role)
            .bind(query)
            .bind(&pattern)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db.pool())
            .await?;
        let total_sql = format!("SELECT COUNT(*) FROM users WHERE {condition}");
        let total = sqlx::query(fixed(&total_sql))
            .bind(role)
            .bind(query)
            .bind(&pattern)
            .fetch_one(self.db.pool())
            .await?;
        Ok(Paged {
            items: rows.iter().map(user_from_row).collect::<Result<_, _>>()?,
            total: count(&total)?,
        })
    }

    pub async fn update_user(
        &self,
        id: UserId,
        changes: UserChanges,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        if let Some(name) = &changes.name {
            sqlx::query("UPDATE users SET name = $1, updated_at = $2 WHERE id = $3")
                .bind(name.as_str())
                .bind(now)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        match changes.disabled {
            // Keep the first disabling time when disabled twice.
            Some(true) => {
                sqlx::query(
                    "UPDATE users SET disabled_at = $1, updated_at = $1 \
                     WHERE id = $2 AND disabled_at IS NULL",
                )
                .bind(now)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            }
            Some(false) => {
                sqlx::query("UPDATE users SET disabled_at = NULL, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let user = row
            .as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Replaces the password hash and invalidates every session token issued before.
    pub async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: String,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, session_version = session_version + 1, \
             updated_at = $2 WHERE id = $3",
        )
        .bind(password_hash)
        .bind(to_millis(now))
        .bind(id.0)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(())
    }
}

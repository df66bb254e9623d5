//! Roles: named sets of grants. A grant is a permission pattern, optionally with conditions the
//! plugin evaluates (`notes.notes.edit:own`). The built-in roles (`admin`, `editor`, `viewer`,
//! `public`) can't be deleted, and `admin` can't be changed; `public` holds what anonymous
//! callers may do.

use serde::Serialize;

use super::Identity;
use crate::db::on_db;

/// The role whose grants anonymous callers hold.
pub const PUBLIC_ROLE: &str = "public";
/// The role that holds everything, and stays that way.
pub const ADMIN_ROLE: &str = "admin";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub builtin: bool,
}

/// Why a role change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("there is no role '{0}'")]
    NotFound(String),
    #[error("a role named '{0}' already exists")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Protected(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

type RoleRow = (String, String, String, bool);

fn role_from_row((name, permissions, description, builtin): RoleRow) -> Role {
    Role {
        name,
        description,
        permissions: serde_json::from_str(&permissions).unwrap_or_default(),
        builtin,
    }
}

fn check_grants(permissions: &[String]) -> Result<(), RoleError> {
    if let Some(bad) = permissions.iter().find(|p| !super::valid_grant(p)) {
        return Err(RoleError::Invalid(format!(
            "'{bad}' is not a grant: use a permission ('notes.read'), a pattern ('notes.*', '*.read', '*'), optionally with conditions ('notes.edit:own')"
        )));
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Identity {
    pub async fn list_roles(&self) -> anyhow::Result<Vec<Role>> {
        let rows: Vec<RoleRow> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT name, permissions, description, builtin FROM roles ORDER BY name",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(role_from_row).collect())
    }

    pub async fn role(&self, name: &str) -> anyhow::Result<Option<Role>> {
        let row: Option<RoleRow> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT name, permissions, description, builtin FROM roles WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(role_from_row))
    }

    /// The grants anonymous callers hold (the `public` role's). Cached for a second, so a change
    /// made on another node applies within a second.
    pub async fn public_permissions(&self) -> anyhow::Result<Vec<String>> {
        if let Some((at, grants)) = &*self.public_grants.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return Ok(grants.clone());
        }
        let grants = self
            .role_permissions(PUBLIC_ROLE)
            .await?
            .unwrap_or_default();
        *self.public_grants.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), grants.clone()));
        Ok(grants)
    }

    pub async fn create_role(
        &self,
        name: &str,
        description: &str,
        permissions: &[String],
        actor: Option<&str>,
    ) -> Result<Role, RoleError> {
        if !valid_name(name) {
            return Err(RoleError::Invalid(format!(
                "'{name}' is not a role name: use 1 to 64 of a-z, 0-9, '-' and '_'"
            )));
        }
        check_grants(permissions)?;
        if self.role(name).await?.is_some() {
            return Err(RoleError::Exists(name.into()));
        }
        let json = serde_json::to_string(permissions).map_err(anyhow::Error::from)?;
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO roles (name, permissions, builtin, description) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(&json)
            .bind(false)
            .bind(description)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(anyhow::Error::from)?;
        self.audit(
            actor,
            "role.create",
            Some(&format!("role:{name}")),
            serde_json::json!({ "permissions": permissions, "description": description }),
        )
        .await;
        Ok(Role {
            name: name.into(),
            description: description.into(),
            permissions: permissions.to_vec(),
            builtin: false,
        })
    }

    /// Changes a role's grants and/or description; audited with before and after.
    pub async fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        permissions: Option<&[String]>,
        actor: Option<&str>,
    ) -> Result<Role, RoleError> {
        let before = self
            .role(name)
            .await?
            .ok_or_else(|| RoleError::NotFound(name.into()))?;
        if name == ADMIN_ROLE {
            return Err(RoleError::Protected(
                "the admin role holds every permission and can't be changed; create another role instead".into(),
            ));
        }
        if let Some(permissions) = permissions {
            check_grants(permissions)?;
        }
        let after = Role {
            description: description.map_or(before.description.clone(), str::to_string),
            permissions: permissions.map_or(before.permissions.clone(), <[String]>::to_vec),
            ..before.clone()
        };
        let json = serde_json::to_string(&after.permissions).map_err(anyhow::Error::from)?;
        on_db!(self.db(), write, |pool| {
            sqlx::query("UPDATE roles SET permissions = $1, description = $2 WHERE name = $3")
                .bind(&json)
                .bind(&after.description)
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(anyhow::Error::from)?;
        if name == PUBLIC_ROLE {
            *self.public_grants.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        self.audit(
            actor,
            "role.update",
            Some(&format!("role:{name}")),
            serde_json::json!({
                "before": { "permissions": before.permissions, "description": before.description },
                "after": { "permissions": after.permissions, "description": after.description },
            }),
        )
        .await;
        Ok(after)
    }

    /// Deletes a role that isn't built in; users holding it lose it.
    pub async fn delete_role(&self, name: &str, actor: Option<&str>) -> Result<(), RoleError> {
        let role = self
            .role(name)
            .await?
            .ok_or_else(|| RoleError::NotFound(name.into()))?;
        if role.builtin {
            return Err(RoleError::Protected(format!(
                "'{name}' is a built-in role and can't be deleted; change its grants instead"
            )));
        }
        let holders: Vec<super::User> = self
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.roles.iter().any(|r| r == name))
            .collect();
        for user in &holders {
            let roles: Vec<String> = user.roles.iter().filter(|r| *r != name).cloned().collect();
            self.set_roles(user, &roles, actor).await?;
        }
        on_db!(self.db(), write, |pool| {
            sqlx::query("DELETE FROM roles WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(anyhow::Error::from)?;
        self.audit(
            actor,
            "role.delete",
            Some(&format!("role:{name}")),
            serde_json::json!({ "permissions": role.permissions, "holders": holders.len() }),
        )
        .await;
        Ok(())
    }
}

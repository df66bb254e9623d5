//! Permission checks. The manifest declares `read`, `create`, `update`, `delete`, `publish`,
//! `preview` and `schema`; per-type and own-entry rules are conditions on a role's grant
//! (`content.update:own`, `content.read:type-article`), which the host passes through and this
//! module enforces.

use ucms_sdk::auth::{self, Access};

use crate::{ApiError, ApiResult};

/// What a grant allows, after its conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Only entries this user created (`own`).
    pub own: Option<String>,
}

/// The principal's grant of `permission` on type `ty`, or why not: 401 for anonymous callers,
/// 403 for others.
pub fn require(permission: &str, ty: &str) -> ApiResult<Grant> {
    match grant(permission, ty) {
        Some(g) => Ok(g),
        None => Err(denied(permission, ty)),
    }
}

pub fn denied(permission: &str, ty: &str) -> ApiError {
    if auth::principal().is_anonymous() {
        ApiError::new(
            401,
            "unauthenticated",
            format!(
                "reading or changing '{ty}' needs the 'content.{permission}' permission; sign in or send `Authorization: Bearer <token>` (anonymous callers hold what the public role grants)"
            ),
        )
    } else {
        ApiError::new(
            403,
            "forbidden",
            format!("this needs the 'content.{permission}' permission for the type '{ty}'"),
        )
    }
}

/// The grant, or `None` when the principal doesn't hold it for `ty`.
pub fn grant(permission: &str, ty: &str) -> Option<Grant> {
    grant_in(permission, ty, None)
}

/// The grant of `permission` for moving an entry of `ty` into the review stage `stage`: like
/// [`grant`], where `stage-NAME` conditions name the stages the grant covers (a grant without
/// them covers every stage).
pub fn grant_stage(permission: &str, ty: &str, stage: &str) -> Option<Grant> {
    grant_in(permission, ty, Some(stage))
}

fn grant_in(permission: &str, ty: &str, stage: Option<&str>) -> Option<Grant> {
    match auth::access(permission) {
        Access::Denied => None,
        Access::Granted => Some(Grant { own: None }),
        Access::Only(conditions) => {
            let types: Vec<&str> = conditions
                .iter()
                .filter_map(|c| c.strip_prefix("type-"))
                .collect();
            let own = conditions.iter().any(|c| c == "own");
            let stages: Vec<&str> = conditions
                .iter()
                .filter_map(|c| c.strip_prefix("stage-"))
                .collect();
            // A condition this plugin doesn't know can't be enforced: refuse rather than ignore it.
            // (`stage-…` is known only where a stage is being entered.)
            if conditions.iter().any(|c| {
                c != "own"
                    && !c.starts_with("type-")
                    && !(stage.is_some() && c.starts_with("stage-"))
            }) {
                return None;
            }
            if !types.is_empty() && !types.contains(&ty) {
                return None;
            }
            if let Some(stage) = stage
                && !stages.is_empty()
                && !stages.contains(&stage)
            {
                return None;
            }
            if own {
                let user = auth::principal().user().map(|u| u.id.clone())?;
                return Some(Grant { own: Some(user) });
            }
            Some(Grant { own: None })
        }
    }
}

/// Whether the principal holds `permission` for any type (under any condition).
pub fn any(permission: &str) -> bool {
    !matches!(auth::access(permission), Access::Denied)
}

/// The id of the calling user, if any.
pub fn user_id() -> Option<String> {
    auth::principal().user().map(|u| u.id.clone())
}

impl Grant {
    /// Checks an entry created by `created_by` against an `own` condition.
    pub fn allows(&self, created_by: Option<&str>, permission: &str) -> ApiResult<()> {
        match &self.own {
            Some(user) if created_by != Some(user.as_str()) => Err(ApiError::new(
                403,
                "forbidden",
                format!(
                    "your 'content.{permission}' permission covers only entries you created, and this one is someone else's"
                ),
            )),
            _ => Ok(()),
        }
    }
}

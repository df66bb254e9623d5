//! Who is calling, and what they may do.

use crate::bindings::ucms::host::{auth as raw, types};

/// A user account as plugins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub roles: Vec<String>,
}

/// On whose behalf the current request or event runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials were presented.
    Anonymous,
    /// A signed-in user.
    User(User),
    /// An API token acting for `owner`, limited to `scopes`.
    Token {
        id: String,
        owner: User,
        scopes: Vec<String>,
    },
    /// The host itself: event deliveries and lifecycle calls.
    System,
}

impl Principal {
    pub(crate) fn from_raw(raw: types::Principal) -> Self {
        match raw {
            types::Principal::Anonymous => Self::Anonymous,
            types::Principal::User(u) => Self::User(user(u)),
            types::Principal::Token(t) => Self::Token {
                id: t.id,
                owner: user(t.owner),
                scopes: t.scopes,
            },
            types::Principal::System => Self::System,
        }
    }

    /// The account behind this principal, if any.
    pub fn user(&self) -> Option<&User> {
        match self {
            Self::User(user) | Self::Token { owner: user, .. } => Some(user),
            Self::Anonymous | Self::System => None,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous)
    }
}

fn user(raw: types::User) -> User {
    User {
        id: raw.id,
        email: raw.email,
        roles: raw.roles,
    }
}

/// The principal of the current invocation (the same one a [`crate::Request`] carries).
pub fn principal() -> Principal {
    Principal::from_raw(raw::current())
}

/// Whether the caller holds one of this plugin's declared permissions, named without the plugin id
/// (`"counter.increment"`). Requires the `auth` capability.
pub fn check(permission: &str) -> bool {
    raw::check(permission)
}

/// Like [`check`], but a 403 error when the caller lacks the permission.
pub fn require(permission: &str) -> crate::Result<()> {
    if check(permission) {
        Ok(())
    } else {
        Err(crate::Error::forbidden(format!(
            "this action needs the '{permission}' permission"
        )))
    }
}

/// How far the caller holds a permission; see [`access`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Denied,
    Granted,
    /// Held only under these conditions, which your plugin evaluates: `own` means "only on
    /// items the caller owns".
    Only(Vec<String>),
}

impl Access {
    /// Whether the permission is held under `condition` or unconditionally.
    pub fn allows(&self, condition: &str) -> bool {
        match self {
            Self::Denied => false,
            Self::Granted => true,
            Self::Only(conditions) => conditions.iter().any(|c| c == condition),
        }
    }
}

/// Like [`check`], with the conditions a role attaches to its grant: a role granting
/// `notes.edit:own` gives `Access::Only(vec!["own"])` for `"edit"`. Requires the `auth` capability.
pub fn access(permission: &str) -> Access {
    match raw::access(permission) {
        raw::AccessLevel::Denied => Access::Denied,
        raw::AccessLevel::Granted => Access::Granted,
        raw::AccessLevel::Only(conditions) => Access::Only(conditions),
    }
}

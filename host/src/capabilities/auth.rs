//! `ucms:host/auth`: the principal of the current invocation and checks of the plugin's own
//! permissions. A plugin can only ask about permissions it declares, so it can't probe others'.

use wasmtime::component::{HasData, Linker};

use crate::identity::{self, Principal};
use crate::wit::latest::ucms::host::auth as wit;
use crate::wit::latest::ucms::host::types;

pub struct AuthCtx<'a> {
    pub plugin: &'a ucms_manifest::Manifest,
    pub principal: &'a Principal,
    pub health: &'a crate::runtime::health::Health,
}

impl AuthCtx<'_> {
    /// A plugin asked about a permission it doesn't declare (only its own are answered).
    fn undeclared(&self, permission: &str) {
        let shown: String = permission.chars().take(200).collect();
        self.health.refused(
            "auth",
            &format!(
                "asked about the permission '{shown}', which its manifest doesn't declare; plugins may check only their own"
            ),
        );
    }
}

struct Auth;

impl HasData for Auth {
    type Data<'a> = AuthCtx<'a>;
}

/// Store data that can give the `ucms:host/auth` host functions their view of the invocation.
pub trait AuthView: Send {
    fn auth(&mut self) -> AuthCtx<'_>;
}

/// Links `ucms:host/auth`.
pub fn add_to_linker<T: AuthView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Auth>(linker, T::auth)
}

/// The WIT form of a principal.
pub fn to_wit(principal: &Principal) -> types::Principal {
    fn user(u: &identity::User) -> types::User {
        types::User {
            id: u.id.clone(),
            email: u.email.clone(),
            roles: u.roles.clone(),
        }
    }
    match principal {
        Principal::Anonymous { .. } => types::Principal::Anonymous,
        Principal::System => types::Principal::System,
        Principal::User { user: u, .. } => types::Principal::User(user(u)),
        Principal::Token {
            token_id,
            user: u,
            scopes,
            ..
        } => types::Principal::Token(types::Token {
            id: token_id.clone(),
            owner: user(u),
            scopes: scopes.clone(),
        }),
    }
}

impl wit::Host for AuthCtx<'_> {
    async fn current(&mut self) -> wasmtime::Result<types::Principal> {
        Ok(to_wit(self.principal))
    }

    async fn check(&mut self, permission: String) -> wasmtime::Result<bool> {
        if !self.plugin.permissions.contains_key(&permission) {
            self.undeclared(&permission);
            return Ok(false);
        }
        Ok(self
            .principal
            .permits(&self.plugin.qualified_permission(&permission)))
    }

    async fn access(&mut self, permission: String) -> wasmtime::Result<wit::AccessLevel> {
        if !self.plugin.permissions.contains_key(&permission) {
            self.undeclared(&permission);
            return Ok(wit::AccessLevel::Denied);
        }
        Ok(
            match self
                .principal
                .access(&self.plugin.qualified_permission(&permission))
            {
                identity::Access::Denied => wit::AccessLevel::Denied,
                identity::Access::Granted => wit::AccessLevel::Granted,
                identity::Access::Only(conditions) => wit::AccessLevel::Only(conditions),
            },
        )
    }
}

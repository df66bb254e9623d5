//! `ucms:host@0.1.0` and `ucms:plugin@0.1.0`, frozen: components built with the 0.1 SDK.
//!
//! The bindings, and the conversions of the exports' records to and from the newest version.
//! The imports' `Host` impls, which forward to the newest capabilities, live with the capabilities
//! (`capabilities::since_v0_1_0`).

use super::latest::exports::ucms::plugin::{event_handler as new_event, http_handler as new_http};
use super::latest::ucms::host as new;

wasmtime::component::bindgen!({
    world: "ucms:plugin/plugin@0.1.0",
    path: ["../wit/v0.1.0/host", "../wit/v0.1.0/plugin"],
    imports: { default: async | trappable },
    exports: { default: async },
});

use self::exports::ucms::plugin::{event_handler as old_event, http_handler as old_http};
use self::ucms::host as old;

/// A principal in the 0.1.0 types (unchanged since).
pub fn principal(p: new::types::Principal) -> old::types::Principal {
    use new::types::Principal as N;
    use old::types::Principal as O;
    let user = |u: new::types::User| old::types::User {
        id: u.id,
        email: u.email,
        roles: u.roles,
    };
    match p {
        N::Anonymous => O::Anonymous,
        N::System => O::System,
        N::User(u) => O::User(user(u)),
        N::Token(t) => O::Token(old::types::Token {
            id: t.id,
            owner: user(t.owner),
            scopes: t.scopes,
        }),
    }
}

// The exports: the host speaks the newest types and converts at the boundary.

/// A request for a 0.1.0 handler. Uploads didn't exist; routes declared with `upload` need 0.2.0
/// (the manifest check refuses them for a 0.1.0 component).
pub(super) fn request(r: &new_http::Request) -> old_http::Request {
    old_http::Request {
        method: r.method.clone(),
        path: r.path.clone(),
        route: r.route.clone(),
        params: r.params.clone(),
        query: r.query.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        principal: principal(r.principal.clone()),
        request_id: r.request_id.clone(),
    }
}

pub(super) fn response(r: old_http::Response) -> new_http::Response {
    new_http::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

pub(super) fn event(e: &new_event::Event) -> old_event::Event {
    old_event::Event {
        id: e.id.clone(),
        topic: e.topic.clone(),
        key: e.key.clone(),
        payload: e.payload.clone(),
        source: e.source.clone(),
        published_at_ms: e.published_at_ms,
        attempt: e.attempt,
    }
}

//! `ucms:plugin@0.2.0`, frozen: components built with the 0.2.0 SDK.
//!
//! Only the exports need bindings: the 0.2.0 imports are semver-compatible with 0.2.1, and
//! wasmtime's linker satisfies them with the 0.2.1 definitions (the `legacy-0-2` test component
//! proves it). These are the conversions of the exports' records to and from the newest version.

use super::latest::exports::ucms::plugin::{event_handler as new_event, http_handler as new_http};
use super::latest::ucms::host as new;

wasmtime::component::bindgen!({
    world: "ucms:plugin/plugin@0.2.0",
    path: ["../wit/v0.2.0/host", "../wit/v0.2.0/plugin"],
    imports: { default: async | trappable },
    exports: { default: async },
});

use self::exports::ucms::plugin::{event_handler as old_event, http_handler as old_http};
use self::ucms::host as old;

/// A principal in the 0.2.0 types (unchanged since).
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

fn blob_info(b: new::types::BlobInfo) -> old::types::BlobInfo {
    old::types::BlobInfo {
        key: b.key,
        size: b.size,
        content_type: b.content_type,
        sha256: b.sha256,
        created_at_ms: b.created_at_ms,
        updated_at_ms: b.updated_at_ms,
    }
}

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
        uploads: r
            .uploads
            .iter()
            .map(|u| old_http::Upload {
                field: u.field.clone(),
                filename: u.filename.clone(),
                blob: blob_info(u.blob.clone()),
            })
            .collect(),
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

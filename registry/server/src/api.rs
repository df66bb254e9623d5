//! The registry's HTTP API.
//!
//! Reads (`/index/…`, `/keys/…`, downloads, search) are public and cacheable: index files and
//! the snapshot carry an ETag and answer `If-None-Match` with 304. Writes need a publisher token
//! (`Authorization: Bearer ucmsr_…`) and are rate-limited per token.
//!
//! The marketplace's endpoints (publishers, reviews, ratings, sign-in) are here too. Marketplace
//! accounts sign in with `POST /api/v1/session`, which sets an HTTP-only session cookie and
//! returns a CSRF token; every write made with the cookie must send it in `X-CSRF-Token`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use ucms_package::keys::{KeyId, PublicKeyFile};
use ucms_package::signature::PackageSignature;
use ucms_package::trust::Rotation;

use crate::market::{PublisherInfo, Session};
use crate::store::{SearchParams, SearchResults, Sort, decode_header_json};
use crate::{Registry, RegistryError};

type Shared = Arc<Registry>;

pub(crate) fn router(registry: Shared) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/index/snapshot.json", get(snapshot))
        .route("/index/{id}", get(index_file))
        .route("/keys/registry.json", get(registry_key))
        .route("/keys/{kind}", get(statements))
        .route("/packages/{id}/{version}/download", get(download))
        .route("/api/v1/packages", post(publish))
        .route("/api/v1/packages/{id}", get(package))
        .route(
            "/api/v1/packages/{id}/{version}/yank",
            post(yank).delete(unyank),
        )
        .route("/api/v1/packages/{id}/owners", get(owners))
        .route(
            "/api/v1/packages/{id}/owners/{publisher}",
            put(add_owner).delete(remove_owner),
        )
        .route("/api/v1/search", get(search))
        .route("/api/v1/publishers/{name}", get(publisher_page))
        .route("/api/v1/packages/{id}/reviews", get(reviews))
        .route(
            "/api/v1/packages/{id}/reviews/mine",
            put(put_review).delete(delete_review),
        )
        .route(
            "/api/v1/packages/{id}/reviews/{author}/report",
            post(report_review),
        )
        .route("/api/v1/reports", get(reports))
        .route("/api/v1/users", post(sign_up))
        .route(
            "/api/v1/session",
            get(current_session).post(sign_in).delete(sign_out),
        )
        .route("/api/v1/keys", post(add_key))
        .route("/api/v1/keys/rotations", post(add_rotation))
        .route("/api/v1/keys/{key_id}/revoke", post(revoke_key))
        .fallback(|uri: http::Uri| async move {
            RegistryError::not_found(format!("nothing is served at {}", uri.path()))
        })
        .with_state(registry)
}

/// Token buckets per publisher token for write requests.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::default(),
        }
    }

    pub(crate) fn admit(&self, token_id: &str) -> Result<(), RegistryError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let rate = self.per_minute / 60.0;
        // Keys can come from anyone (sign-in emails): forget buckets that have refilled, so the
        // map stays bounded by the keys active in the last minute.
        if buckets.len() > 10_000 {
            let full = self.per_minute;
            buckets.retain(|_, (tokens, last)| {
                *tokens + now.duration_since(*last).as_secs_f64() * rate < full
            });
        }
        let (tokens, last) = buckets
            .entry(token_id.to_string())
            .or_insert((self.per_minute, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(self.per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(RegistryError::rate_limited(
                ((1.0 - *tokens) / rate).ceil() as u64
            ))
        }
    }
}

/// The publisher behind the request's token, after the rate limit.
async fn publisher(registry: &Registry, headers: &HeaderMap) -> Result<String, RegistryError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            RegistryError::unauthorized("send the publisher token: Authorization: Bearer ucmsr_…")
        })?;
    let (publisher, token_id) = registry.authenticate(token.trim()).await?;
    registry.limiter.admit(&token_id)?;
    Ok(publisher)
}

fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &ucms_package::signature::digest(body)[7..39])
}

/// A cacheable body: 304 when the client already has it.
fn cacheable(headers: &HeaderMap, body: String, content_type: &'static str) -> Response {
    let etag = etag_of(body.as_bytes());
    let fresh = headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, [(http::header::ETAG, etag)]).into_response();
    }
    (
        [
            (http::header::ETAG, etag),
            (http::header::CONTENT_TYPE, content_type.to_string()),
            (http::header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

async fn snapshot(State(r): State<Shared>, headers: HeaderMap) -> Response {
    let published = r.published().await;
    cacheable(
        &headers,
        published.snapshot_json.clone(),
        "application/json",
    )
}

async fn index_file(
    State(r): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    let published = r.published().await;
    let text = published
        .index
        .get(&id)
        .ok_or_else(|| RegistryError::not_found(format!("no package '{id}' is published here")))?;
    Ok(cacheable(&headers, text.clone(), "application/x-ndjson"))
}

async fn registry_key(State(r): State<Shared>) -> Json<PublicKeyFile> {
    Json(r.public_key())
}

async fn statements(
    State(r): State<Shared>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    let kind = kind.strip_suffix(".json").unwrap_or(&kind);
    if !["endorsements", "rotations", "revocations"].contains(&kind) {
        return Err(RegistryError::not_found(format!(
            "/keys/{kind} is not a statement list"
        )));
    }
    let all = r.statements().await?;
    let list = all.get(kind).cloned().unwrap_or_default();
    Ok(cacheable(
        &headers,
        serde_json::to_string(&list).expect("serializes"),
        "application/json",
    ))
}

async fn download(
    State(r): State<Shared>,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let bytes = r.download(&id, &version).await?;
    Ok(([(http::header::CONTENT_TYPE, "application/zstd")], bytes).into_response())
}

async fn publish(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    let signature: PackageSignature = decode_header_json(
        headers
            .get("x-ucms-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::bad_request("the package is unsigned: send its signature in X-UCMS-Signature (ucms plugin sign makes one)"))?,
        "X-UCMS-Signature",
    )?;
    let public_key = match headers
        .get("x-ucms-public-key")
        .and_then(|v| v.to_str().ok())
    {
        Some(value) => {
            let file: PublicKeyFile = decode_header_json(value, "X-UCMS-Public-Key")?;
            Some(
                file.key()
                    .map_err(|e| RegistryError::bad_request(e.to_string()))?,
            )
        }
        None => None,
    };
    let entry = r
        .publish(&publisher, &body, &signature, public_key.as_ref())
        .await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

async fn package(
    State(r): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, RegistryError> {
    let entries = r.all_entries().await?;
    let versions = entries
        .get(&id)
        .ok_or_else(|| RegistryError::not_found(format!("no package '{id}' is published here")))?;
    let latest = versions
        .iter()
        .filter(|e| !e.yanked)
        .max_by(|a, b| a.version.cmp(&b.version))
        .or(versions.last());
    let mut documents = r.documents(&id).await?;
    let (readme, changelog) = latest
        .and_then(|l| documents.remove(&l.version.to_string()))
        .unwrap_or_default();
    let verified = match latest {
        Some(l) => r.verified_publishers().await?.contains(&l.publisher),
        None => false,
    };
    Ok(Json(json!({
        "id": id,
        "owners": r.owners(&id).await?,
        "versions": versions,
        "downloads": r.downloads(&id).await?,
        "rating": r.rating(&id).await?,
        "verified": verified,
        "readme": readme,
        "changelog": changelog,
    })))
}

async fn yank(
    State(r): State<Shared>,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    r.set_yanked(&publisher, &id, &version, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unyank(
    State(r): State<Shared>,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    r.set_yanked(&publisher, &id, &version, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn owners(
    State(r): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, RegistryError> {
    Ok(Json(json!({ "owners": r.owners(&id).await? })))
}

async fn add_owner(
    State(r): State<Shared>,
    Path((id, owner)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    Ok(Json(
        json!({ "owners": r.set_owner(&publisher, &id, &owner, true).await? }),
    ))
}

async fn remove_owner(
    State(r): State<Shared>,
    Path((id, owner)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    Ok(Json(
        json!({ "owners": r.set_owner(&publisher, &id, &owner, false).await? }),
    ))
}

/// Reads the search parameters, naming any that is wrong.
pub(crate) fn search_params(
    query: &HashMap<String, String>,
) -> Result<SearchParams, RegistryError> {
    let text = |name: &str| {
        query
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let number = |name: &str| -> Result<Option<usize>, RegistryError> {
        text(name)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    RegistryError::bad_request(format!(
                        "'{name}' is '{v}'; it must be a positive whole number"
                    ))
                })
            })
            .transpose()
    };
    let sort = match text("sort").as_deref() {
        None | Some("downloads") => Sort::Downloads,
        Some("rating") => Sort::Rating,
        Some("updated") => Sort::Updated,
        Some("name") => Sort::Name,
        Some(other) => {
            return Err(RegistryError::bad_request(format!(
                "cannot sort by '{other}': use sort=downloads, rating, updated or name"
            )));
        }
    };
    Ok(SearchParams {
        q: text("q").unwrap_or_default(),
        category: text("category"),
        capability: text("capability"),
        sort,
        page: number("page")?.unwrap_or(1).max(1),
        per_page: number("per_page")?
            .or(number("limit")?)
            .unwrap_or(20)
            .clamp(1, 200),
    })
}

async fn search(
    State(r): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<SearchResults>, RegistryError> {
    let params = search_params(&query)?;
    Ok(Json(r.search(&params).await?))
}

async fn publisher_page(
    State(r): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<PublisherInfo>, RegistryError> {
    Ok(Json(r.publisher_info(&name).await?))
}

/// The marketplace session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "ucms_market";

/// The session the request's cookie names, if it is live.
pub(crate) async fn session_of(
    r: &Registry,
    headers: &HeaderMap,
) -> Result<Option<Session>, RegistryError> {
    let token = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string());
    match token {
        Some(token) => r.session(&token).await,
        None => Ok(None),
    }
}

/// Whether cookies get `Secure`: when configured, or when a TLS-terminating proxy says the
/// request came over HTTPS (a forged header can only make the cookie stricter).
fn secure(r: &Registry, headers: &HeaderMap) -> bool {
    r.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that carries a session (HTTP-only, same-site Lax).
pub(crate) fn session_cookie(r: &Registry, headers: &HeaderMap, session: &Session) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        session.token,
        crate::market::SESSION_TTL_MS / 1000,
        if secure(r, headers) { "; Secure" } else { "" }
    )
}

pub(crate) fn clear_cookie(r: &Registry, headers: &HeaderMap) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure(r, headers) { "; Secure" } else { "" }
    )
}

/// The signed-in session of a write request: it must carry the session's CSRF token in
/// `X-CSRF-Token`.
async fn signed_in_write(r: &Registry, headers: &HeaderMap) -> Result<Session, RegistryError> {
    let session = session_of(r, headers).await?.ok_or_else(|| {
        RegistryError::unauthorized("sign in first: POST /api/v1/session sets the session cookie")
    })?;
    let presented = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !session.csrf_matches(presented) {
        return Err(RegistryError::forbidden(
            "the X-CSRF-Token header is missing or wrong: send the csrf_token that sign-in returned",
        ));
    }
    Ok(session)
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, RegistryError> {
    serde_json::from_slice(body)
        .map_err(|e| RegistryError::bad_request(format!("the body is not {what}: {e}")))
}

fn session_json(session: &Session) -> serde_json::Value {
    json!({ "user": session.user, "csrf_token": session.csrf })
}

fn with_cookie(status: StatusCode, cookie: String, body: serde_json::Value) -> Response {
    (status, [(http::header::SET_COOKIE, cookie)], Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
struct SignUpBody {
    email: String,
    name: String,
    password: String,
}

async fn sign_up(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let body: SignUpBody = json_body(&body, r#"{"email": "…", "name": "…", "password": "…"}"#)?;
    let session = r.sign_up(&body.email, &body.name, &body.password).await?;
    Ok(with_cookie(
        StatusCode::CREATED,
        session_cookie(&r, &headers, &session),
        session_json(&session),
    ))
}

#[derive(Debug, Deserialize)]
struct SignInBody {
    email: String,
    password: String,
}

async fn sign_in(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let body: SignInBody = json_body(&body, r#"{"email": "…", "password": "…"}"#)?;
    let session = r.sign_in(&body.email, &body.password).await?;
    Ok(with_cookie(
        StatusCode::OK,
        session_cookie(&r, &headers, &session),
        session_json(&session),
    ))
}

async fn current_session(
    State(r): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, RegistryError> {
    let session = session_of(&r, &headers)
        .await?
        .ok_or_else(|| RegistryError::unauthorized("not signed in"))?;
    Ok(Json(session_json(&session)))
}

async fn sign_out(State(r): State<Shared>, headers: HeaderMap) -> Result<Response, RegistryError> {
    let session = signed_in_write(&r, &headers).await?;
    r.sign_out(&session.token).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(http::header::SET_COOKIE, clear_cookie(&r, &headers))],
    )
        .into_response())
}

async fn reviews(
    State(r): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, RegistryError> {
    if r.owners(&id).await?.is_empty() {
        return Err(RegistryError::not_found(format!(
            "no package '{id}' is published here"
        )));
    }
    Ok(Json(
        json!({ "rating": r.rating(&id).await?, "reviews": r.reviews(&id).await? }),
    ))
}

#[derive(Debug, Deserialize)]
struct ReviewBody {
    rating: i64,
    #[serde(default)]
    body: String,
}

async fn put_review(
    State(r): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, RegistryError> {
    let session = signed_in_write(&r, &headers).await?;
    let body: ReviewBody = json_body(&body, r#"{"rating": 1-5, "body": "…"}"#)?;
    let review = r
        .put_review(&session.user, &id, body.rating, &body.body)
        .await?;
    Ok(Json(
        json!({ "review": review, "rating": r.rating(&id).await? }),
    ))
}

async fn delete_review(
    State(r): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, RegistryError> {
    let session = signed_in_write(&r, &headers).await?;
    r.delete_review(&session.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ReportBody {
    reason: String,
}

async fn report_review(
    State(r): State<Shared>,
    Path((id, author)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, RegistryError> {
    let session = signed_in_write(&r, &headers).await?;
    let body: ReportBody = json_body(&body, r#"{"reason": "…"}"#)?;
    r.report_review(&session.user, &id, &author, &body.reason)
        .await?;
    Ok(StatusCode::CREATED)
}

async fn reports(
    State(r): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, RegistryError> {
    let session = session_of(&r, &headers)
        .await?
        .ok_or_else(|| RegistryError::unauthorized("sign in as a registry admin"))?;
    if !session.user.admin {
        return Err(RegistryError::forbidden(
            "only the registry's admins see reports",
        ));
    }
    Ok(Json(json!({ "reports": r.reports().await? })))
}

async fn add_key(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    let file: PublicKeyFile = serde_json::from_slice(&body).map_err(|e| {
        RegistryError::bad_request(format!("the body is not a public key file: {e}"))
    })?;
    if file.publisher != publisher {
        return Err(RegistryError::forbidden(format!(
            "the key file is for publisher '{}', but the token belongs to '{publisher}'",
            file.publisher
        )));
    }
    let key = file
        .key()
        .map_err(|e| RegistryError::bad_request(e.to_string()))?;
    let endorsement = r.add_key(&publisher, &key).await?;
    Ok((StatusCode::CREATED, Json(endorsement)).into_response())
}

async fn add_rotation(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    let rotation: Rotation = serde_json::from_slice(&body).map_err(|e| {
        RegistryError::bad_request(format!("the body is not a rotation statement: {e}"))
    })?;
    r.add_rotation(&publisher, rotation).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize)]
struct RevokeBody {
    reason: String,
}

async fn revoke_key(
    State(r): State<Shared>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<RevokeBody>,
) -> Result<Json<serde_json::Value>, RegistryError> {
    let publisher = publisher(&r, &headers).await?;
    let key_id = KeyId(key_id);
    match r.key_owner(&key_id).await? {
        Some(owner) if owner == publisher => {}
        Some(_) => {
            return Err(RegistryError::forbidden(
                "you can revoke only your own keys",
            ));
        }
        None => {
            return Err(RegistryError::not_found(format!(
                "no key {key_id} is registered"
            )));
        }
    }
    let revocation = r.revoke_key(&key_id, &body.reason).await?;
    Ok(Json(serde_json::to_value(revocation).expect("serializes")))
}

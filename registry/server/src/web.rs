//! The public marketplace: server-rendered pages at `/` over the same state as the API.
//!
//! Pages are built with `maud`, which escapes every interpolated value; package READMEs and
//! changelogs are Markdown rendered by `pulldown-cmark` and then cleaned by `ammonia`, so a
//! package can't inject script or styles. Every response carries a strict Content-Security-Policy
//! (scripts, styles and images only from this origin, no inline script). Forms work without
//! JavaScript; `market.js` only adds comforts. Writes made from pages carry the session's CSRF
//! token in a hidden field; sign-in and sign-up refuse a cross-origin `Origin`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use ucms_package::index::IndexEntry;

use crate::api::{clear_cookie, search_params, session_cookie, session_of};
use crate::market::{Rating, Session};
use crate::store::{SearchHit, SearchParams};
use crate::{Registry, RegistryError};

type Shared = Arc<Registry>;

const CSS: &str = include_str!("web/market.css");
const JS: &str = include_str!("web/market.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn router(registry: Shared) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/plugins/{id}", get(plugin_page))
        .route("/plugins/{id}/review", post(save_review))
        .route("/plugins/{id}/review/delete", post(remove_review))
        .route("/plugins/{id}/reviews/{author}/report", post(report))
        .route("/publishers/{name}", get(publisher_page))
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signup", get(sign_up_page).post(sign_up))
        .route("/signout", post(sign_out))
        .route("/reports", get(reports_page))
        .route(
            "/static/market.css",
            get(|| async { static_file(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/static/market.js",
            get(|| async { static_file(JS, "text/javascript; charset=utf-8") }),
        )
        .layer(middleware::from_fn(security_headers))
        .with_state(registry)
}

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, content_type),
            (http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    response
}

/// A page's error: the same layout, with the message and a fitting status.
struct PageError(RegistryError);

impl From<RegistryError> for PageError {
    fn from(e: RegistryError) -> Self {
        Self(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match &self.0 {
            RegistryError::Api {
                status, message, ..
            } => (*status, message.clone()),
            RegistryError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "marketplace page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the marketplace failed to show this page; the details are in its log"
                        .to_string(),
                )
            }
        };
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let body = html! {
            h1 { (title) }
            p.notice.error role="alert" { (message) }
            p { a href="/" { "Back to the marketplace" } }
        };
        (status, layout(&title, None, "", body)).into_response()
    }
}

type PageResult = Result<Response, PageError>;

fn layout(title: &str, session: Option<&Session>, query: &str, main: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · UCMS marketplace" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/market.css";
                script src="/static/market.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "UCMS marketplace" }
                    form.search role="search" action="/" method="get" {
                        label.visually-hidden for="top-q" { "Search plugins" }
                        input #top-q type="search" name="q" value=(query) placeholder="Search plugins";
                        button type="submit" { "Search" }
                    }
                    nav aria-label="Account" {
                        @if let Some(s) = session {
                            span.who { "Signed in as " strong { (s.user.name) } }
                            @if s.user.admin { a href="/reports" { "Reports" } }
                            form.inline action="/signout" method="post" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        } @else {
                            a href="/signin" { "Sign in" }
                            a href="/signup" { "Sign up" }
                        }
                    }
                }
                main #main tabindex="-1" { (main) }
                footer { p { "Plugins are signed by their publishers; a " span.badge { "verified" } " publisher's key is endorsed by this registry." } }
            }
        }
    };
    Html(page.into_string())
}

fn day(unix_secs: i64) -> String {
    ucms_db::rfc3339(unix_secs.saturating_mul(1000))
        .chars()
        .take(10)
        .collect()
}

fn stars(rating: Rating) -> Markup {
    let label = if rating.count == 0 {
        "No ratings yet".to_string()
    } else {
        format!(
            "Rated {:.1} out of 5 by {} {}",
            rating.average,
            rating.count,
            if rating.count == 1 {
                "person"
            } else {
                "people"
            }
        )
    };
    let full = rating.average.round() as usize;
    html! {
        span.rating data-average=(format!("{:.1}", rating.average)) data-count=(rating.count) {
            span.stars aria-hidden="true" {
                @for i in 1..=5 { @if i <= full { "★" } @else { "☆" } }
            }
            span.rating-text { (label) }
        }
    }
}

fn verified_badge(verified: bool) -> Markup {
    html! {
        @if verified {
            span.badge title="This publisher's signing key is endorsed by this registry" { "✓ verified" }
        }
    }
}

/// Markdown from a package, as safe HTML: rendered, then cleaned of anything that could run.
pub(crate) fn render_markdown(text: &str) -> String {
    let options = pulldown_cmark::Options::ENABLE_TABLES
        | pulldown_cmark::Options::ENABLE_STRIKETHROUGH
        | pulldown_cmark::Options::ENABLE_TASKLISTS;
    use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};
    // The page has its own h1 and the README sits under an h2: its headings start at h3.
    let lower = |level: HeadingLevel| match level {
        HeadingLevel::H1 => HeadingLevel::H3,
        HeadingLevel::H2 => HeadingLevel::H4,
        HeadingLevel::H3 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    };
    let parser = pulldown_cmark::Parser::new_ext(text, options).map(|event| match event {
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: lower(level),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(lower(level))),
        other => other,
    });
    let mut rendered = String::new();
    pulldown_cmark::html::push_html(&mut rendered, parser);
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .clean(&rendered)
        .to_string()
}

fn hit_card(hit: &SearchHit) -> Markup {
    let e = &hit.latest;
    html! {
        li.card {
            h3 { a href=(format!("/plugins/{}", e.id)) { (e.id) } " " span.version { (e.version) } }
            p.description { (e.description) }
            p.meta {
                "by " a href=(format!("/publishers/{}", e.publisher)) { (e.publisher) } " " (verified_badge(hit.verified))
                " · " span.downloads { (hit.downloads) " downloads" }
                " · " (stars(hit.rating))
                " · updated " time datetime=(day(hit.updated_at)) { (day(hit.updated_at)) }
            }
            @if !e.categories.is_empty() {
                ul.tags aria-label="Categories" {
                    @for c in &e.categories { li { a href=(format!("/?category={c}")) { (c) } } }
                }
            }
        }
    }
}

fn query_string(params: &SearchParams, page: usize) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    if !params.q.is_empty() {
        url.append_pair("q", &params.q);
    }
    if let Some(c) = &params.category {
        url.append_pair("category", c);
    }
    if let Some(c) = &params.capability {
        url.append_pair("capability", c);
    }
    url.append_pair(
        "sort",
        match params.sort {
            crate::Sort::Downloads => "downloads",
            crate::Sort::Rating => "rating",
            crate::Sort::Updated => "updated",
            crate::Sort::Name => "name",
        },
    );
    url.append_pair("page", &page.to_string());
    format!("/?{}", url.finish())
}

async fn home(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let session = session_of(&r, &headers).await?;
    let params = search_params(&query)?;
    let results = r.search(&params).await?;
    // The filter menus list every category and capability of the text matches.
    let all = r
        .search(&SearchParams {
            q: params.q.clone(),
            per_page: 1,
            ..Default::default()
        })
        .await?;
    let sort = |value: &str, label: &str| {
        let selected = query.get("sort").map(String::as_str).unwrap_or("downloads") == value;
        html! { option value=(value) selected[selected] { (label) } }
    };
    let pages = results.total.div_ceil(results.per_page).max(1);
    let heading = if params.q.is_empty() && params.category.is_none() && params.capability.is_none()
    {
        "All plugins".to_string()
    } else {
        format!(
            "{} plugin{} found",
            results.total,
            if results.total == 1 { "" } else { "s" }
        )
    };
    let body = html! {
        h1 { "Plugins for UCMS" }
        form.filters #filters action="/" method="get" aria-label="Search and filter plugins" {
            div.field {
                label for="q" { "Text" }
                input #q type="search" name="q" value=(params.q);
            }
            div.field {
                label for="category" { "Category" }
                select #category name="category" data-autosubmit {
                    option value="" { "Any category" }
                    @for (c, n) in &all.facets.categories {
                        option value=(c) selected[params.category.as_deref() == Some(c.as_str())] { (c) " (" (n) ")" }
                    }
                }
            }
            div.field {
                label for="capability" { "Capability" }
                select #capability name="capability" data-autosubmit {
                    option value="" { "Any capability" }
                    @for (c, n) in &all.facets.capabilities {
                        option value=(c) selected[params.capability.as_deref() == Some(c.as_str())] { (c) " (" (n) ")" }
                    }
                }
            }
            div.field {
                label for="sort" { "Sort by" }
                select #sort name="sort" data-autosubmit {
                    (sort("downloads", "Most downloaded"))
                    (sort("rating", "Best rated"))
                    (sort("updated", "Recently updated"))
                    (sort("name", "Name"))
                }
            }
            button type="submit" { "Apply" }
        }
        section aria-labelledby="results-heading" {
            h2 #results-heading aria-live="polite" { (heading) }
            @if results.packages.is_empty() {
                p.notice { "No plugin matches. Try fewer words or another category." }
            } @else {
                ul.cards #results { @for hit in &results.packages { (hit_card(hit)) } }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages" {
                    @if results.page > 1 { a rel="prev" href=(query_string(&params, results.page - 1)) { "← Previous" } }
                    span { "Page " (results.page) " of " (pages) }
                    @if results.page < pages { a rel="next" href=(query_string(&params, results.page + 1)) { "Next →" } }
                }
            }
        }
    };
    Ok(layout("Plugins", session.as_ref(), &params.q, body).into_response())
}

fn compatible(entry: &IndexEntry, supported: &[semver::Version]) -> Vec<String> {
    let Some(req) = entry.api_req() else {
        return Vec::new();
    };
    supported
        .iter()
        .filter(|v| req.matches(v))
        .map(ToString::to_string)
        .collect()
}

async fn plugin_page(
    State(r): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let session = session_of(&r, &headers).await?;
    plugin_view(&r, &id, session.as_ref(), None, StatusCode::OK).await
}

/// The plugin page; `problem` is a message to show by the review form (after a refused write).
async fn plugin_view(
    r: &Registry,
    id: &str,
    session: Option<&Session>,
    problem: Option<String>,
    status: StatusCode,
) -> PageResult {
    let entries = r.all_entries().await?;
    let versions = entries
        .get(id)
        .ok_or_else(|| RegistryError::not_found(format!("no plugin '{id}' is published here")))?;
    let latest = versions
        .iter()
        .filter(|e| !e.yanked)
        .max_by(|a, b| a.version.cmp(&b.version))
        .or(versions.last())
        .expect("a published package has a version");
    let downloads = r.downloads(id).await?;
    let rating = r.rating(id).await?;
    let reviews = r.reviews(id).await?;
    let verified = r.verified_publishers().await?.contains(&latest.publisher);
    let documents = r.documents(id).await?;
    let (readme, changelog) = documents
        .get(&latest.version.to_string())
        .cloned()
        .unwrap_or_default();
    let mine = session.and_then(|s| reviews.iter().find(|rv| rv.author == s.user.id));
    let hosts = compatible(latest, &r.config.supported_api);
    let mut newest_first: Vec<&IndexEntry> = versions.iter().collect();
    newest_first.sort_by(|a, b| b.version.cmp(&a.version));
    let body = html! {
        article.plugin {
            header.plugin-head {
                h1 { (latest.id) " " span.version { (latest.version) } }
                p.description { (latest.description) }
                p.meta {
                    "by " a href=(format!("/publishers/{}", latest.publisher)) { (latest.publisher) } " " (verified_badge(verified))
                    " · " span #downloads { (downloads.total) " downloads" }
                    " · " span #rating { (stars(rating)) }
                }
                p { "Install: " code { "ucms plugin install " (latest.id) } }
                @if !latest.categories.is_empty() {
                    ul.tags aria-label="Categories" {
                        @for c in &latest.categories { li { a href=(format!("/?category={c}")) { (c) } } }
                    }
                }
            }
            div.columns {
                div.main-column {
                    section aria-labelledby="readme-heading" {
                        h2 #readme-heading { "README" }
                        @if let Some(text) = &readme {
                            div.markdown #readme { (PreEscaped(render_markdown(text))) }
                        } @else {
                            p { "This version has no README." }
                        }
                    }
                    section aria-labelledby="changelog-heading" {
                        h2 #changelog-heading { "Changelog" }
                        @if let Some(text) = &changelog {
                            div.markdown #changelog { (PreEscaped(render_markdown(text))) }
                        } @else {
                            p { "This version has no changelog." }
                        }
                    }
                    (reviews_section(id, rating, &reviews, session, mine, problem.as_deref()))
                }
                aside.side-column {
                    section aria-labelledby="caps-heading" {
                        h2 #caps-heading { "Requested capabilities" }
                        @if latest.capabilities.is_empty() {
                            p { "None: it runs without host capabilities." }
                        } @else {
                            ul #capabilities { @for c in &latest.capabilities { li { (c) } } }
                        }
                    }
                    section aria-labelledby="compat-heading" {
                        h2 #compat-heading { "Compatibility" }
                        p { "Host API " code { (latest.api) } }
                        @if hosts.is_empty() {
                            p.notice.error { "No host API version this registry knows matches." }
                        } @else {
                            p { "Works with host API " (hosts.join(", ")) "." }
                        }
                    }
                    section aria-labelledby="deps-heading" {
                        h2 #deps-heading { "Dependencies" }
                        @if latest.dependencies.is_empty() {
                            p { "None." }
                        } @else {
                            ul { @for (dep, req) in &latest.dependencies {
                                li { a href=(format!("/plugins/{dep}")) { (dep) } " " code { (req) } }
                            } }
                        }
                    }
                    section aria-labelledby="versions-heading" {
                        h2 #versions-heading { "Versions" }
                        table #versions {
                            thead { tr { th scope="col" { "Version" } th scope="col" { "Published" } th scope="col" { "Downloads" } } }
                            tbody {
                                @for v in &newest_first {
                                    tr {
                                        td { (v.version) @if v.yanked { " " span.yanked { "yanked" } } }
                                        td { time datetime=(day(v.published_at)) { (day(v.published_at)) } }
                                        td { (downloads.versions.get(&v.version.to_string()).copied().unwrap_or(0)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok((status, layout(id, session, "", body)).into_response())
}

fn reviews_section(
    id: &str,
    rating: Rating,
    reviews: &[crate::Review],
    session: Option<&Session>,
    mine: Option<&crate::Review>,
    problem: Option<&str>,
) -> Markup {
    html! {
        section #reviews aria-labelledby="reviews-heading" {
            h2 #reviews-heading { "Ratings and reviews" }
            p #rating-summary { (stars(rating)) }
            @if let Some(s) = session {
                form.review #review-form action=(format!("/plugins/{id}/review")) method="post" {
                    h3 { @if mine.is_some() { "Edit your review" } @else { "Write a review" } }
                    @if let Some(msg) = problem { p.notice.error role="alert" { (msg) } }
                    input type="hidden" name="csrf" value=(s.csrf);
                    fieldset {
                        legend { "Your rating" }
                        @for n in (1..=5).rev() {
                            label.star-choice {
                                input type="radio" name="rating" value=(n) required checked[mine.is_some_and(|m| m.rating == n)];
                                (n) " star" @if n > 1 { "s" }
                            }
                        }
                    }
                    div.field {
                        label for="review-body" { "Your review" }
                        textarea #review-body name="body" rows="4" maxlength="5000" data-counter="review-count" {
                            @if let Some(m) = mine { (m.body) }
                        }
                        span #review-count.hint aria-live="polite" {}
                    }
                    button type="submit" { @if mine.is_some() { "Update review" } @else { "Post review" } }
                }
                @if mine.is_some() {
                    form.inline action=(format!("/plugins/{id}/review/delete")) method="post" data-confirm="Delete your review?" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button.link type="submit" { "Delete my review" }
                    }
                }
            } @else {
                p { a href=(format!("/signin?next=/plugins/{id}")) { "Sign in" } " to rate and review this plugin." }
            }
            @if reviews.is_empty() {
                p { "No reviews yet." }
            } @else {
                ol.reviews #review-list {
                    @for rv in reviews {
                        li.review-item data-author=(rv.author) {
                            p.review-head {
                                strong { (rv.author_name) } " "
                                (stars(Rating { average: rv.rating as f64, count: 1 }))
                                " · " time datetime=(day(rv.updated_at / 1000)) { (day(rv.updated_at / 1000)) }
                                @if rv.updated_at != rv.created_at { " (edited)" }
                            }
                            p.review-body { (rv.body) }
                            @if let Some(s) = session.filter(|s| s.user.id != rv.author) {
                                details.report {
                                    summary { "Report this review" }
                                    form action=(format!("/plugins/{id}/reviews/{}/report", rv.author)) method="post" {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        label for=(format!("reason-{}", rv.author)) { "Why should an admin look at it?" }
                                        input id=(format!("reason-{}", rv.author)) type="text" name="reason" required maxlength="1000";
                                        button type="submit" { "Report" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The session of a form post, which must carry its CSRF token.
async fn form_session(
    r: &Registry,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Session, RegistryError> {
    let session = session_of(r, headers)
        .await?
        .ok_or_else(|| RegistryError::unauthorized("sign in first"))?;
    if !session.csrf_matches(form.get("csrf").map(String::as_str).unwrap_or("")) {
        return Err(RegistryError::forbidden(
            "this form is stale or came from another site: reload the page and try again",
        ));
    }
    Ok(session)
}

async fn save_review(
    State(r): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let session = form_session(&r, &headers, &form).await?;
    let rating = form
        .get("rating")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let body = form.get("body").map(String::as_str).unwrap_or("");
    match r.put_review(&session.user, &id, rating, body).await {
        Ok(_) => Ok(Redirect::to(&format!("/plugins/{id}#reviews")).into_response()),
        Err(RegistryError::Api {
            status, message, ..
        }) if status != StatusCode::NOT_FOUND => {
            plugin_view(&r, &id, Some(&session), Some(message), status).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn remove_review(
    State(r): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let session = form_session(&r, &headers, &form).await?;
    r.delete_review(&session.user, &id).await?;
    Ok(Redirect::to(&format!("/plugins/{id}#reviews")).into_response())
}

async fn report(
    State(r): State<Shared>,
    Path((id, author)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let session = form_session(&r, &headers, &form).await?;
    let reason = form.get("reason").map(String::as_str).unwrap_or("");
    r.report_review(&session.user, &id, &author, reason).await?;
    let body = html! {
        h1 { "Thank you" }
        p.notice role="status" { "The registry's admins will look at the review." }
        p { a href=(format!("/plugins/{id}#reviews")) { "Back to " (id) } }
    };
    Ok(layout("Reported", Some(&session), "", body).into_response())
}

async fn publisher_page(
    State(r): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let session = session_of(&r, &headers).await?;
    let info = r.publisher_info(&name).await?;
    let body = html! {
        h1 { (info.name) " " (verified_badge(info.verified)) }
        p { "Publisher since " (day(info.created_at / 1000)) "." }
        @if !info.verified {
            p.notice { "No key of this publisher is currently endorsed by this registry." }
        }
        section aria-labelledby="packages-heading" {
            h2 #packages-heading { "Plugins" }
            @if info.packages.is_empty() {
                p { "No plugins yet." }
            } @else {
                ul.cards { @for hit in &info.packages { (hit_card(hit)) } }
            }
        }
        section aria-labelledby="keys-heading" {
            h2 #keys-heading { "Signing keys" }
            @if info.keys.is_empty() {
                p { "None registered." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Status" } th scope="col" { "Endorsed until" } } }
                    tbody {
                        @for k in &info.keys {
                            tr {
                                td { code { (k.key_id) } }
                                td {
                                    @if let Some(reason) = &k.revoked { "revoked: " (reason) }
                                    @else if k.trusted { "trusted" }
                                    @else { "not trusted" }
                                }
                                td { @if let Some(until) = k.endorsed_until { (day(until)) } @else { "—" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&name, session.as_ref(), "", body).into_response())
}

/// Where to go after signing in: only a path on this site.
fn next_path(form: &HashMap<String, String>) -> String {
    form.get("next")
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .cloned()
        .unwrap_or_else(|| "/".to_string())
}

fn account_form(action: &str, next: &str, email: &str, problem: Option<&str>) -> Markup {
    let signup = action == "/signup";
    html! {
        h1 { @if signup { "Create an account" } @else { "Sign in" } }
        form.account #account-form action=(action) method="post" {
            @if let Some(msg) = problem { p.notice.error role="alert" { (msg) } }
            input type="hidden" name="next" value=(next);
            div.field {
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) required autocomplete="email";
            }
            @if signup {
                div.field {
                    label for="name" { "Display name" }
                    input #name type="text" name="name" required maxlength="64" autocomplete="nickname";
                }
            }
            div.field {
                label for="password" { "Password" }
                input #password type="password" name="password" required
                    minlength=(crate::market::MIN_PASSWORD_LEN)
                    autocomplete=(if signup { "new-password" } else { "current-password" });
                @if signup { span.hint { "At least " (crate::market::MIN_PASSWORD_LEN) " characters." } }
            }
            button type="submit" { @if signup { "Create account" } @else { "Sign in" } }
        }
        @if signup {
            p { "Already have an account? " a href=(format!("/signin?next={next}")) { "Sign in" } }
        } @else {
            p { "New here? " a href=(format!("/signup?next={next}")) { "Create an account" } }
        }
    }
}

async fn sign_in_page(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let session = session_of(&r, &headers).await?;
    let next = next_path(&query);
    Ok(layout(
        "Sign in",
        session.as_ref(),
        "",
        account_form("/signin", &next, "", None),
    )
    .into_response())
}

async fn sign_up_page(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let session = session_of(&r, &headers).await?;
    let next = next_path(&query);
    Ok(layout(
        "Sign up",
        session.as_ref(),
        "",
        account_form("/signup", &next, "", None),
    )
    .into_response())
}

/// Sign-in and sign-up forms don't have a session to carry a CSRF token yet: refuse a post whose
/// `Origin` names another site (browsers send it on cross-origin posts).
fn same_origin(headers: &HeaderMap) -> Result<(), RegistryError> {
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    if origin_host != host {
        return Err(RegistryError::forbidden(
            "this form was sent from another site",
        ));
    }
    Ok(())
}

fn signed_in(r: &Registry, headers: &HeaderMap, session: &Session, next: &str) -> Response {
    let mut response = Redirect::to(next).into_response();
    if let Ok(value) = HeaderValue::from_str(&session_cookie(r, headers, session)) {
        response
            .headers_mut()
            .insert(http::header::SET_COOKIE, value);
    }
    response
}

async fn account_post(
    r: &Registry,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    signup: bool,
) -> PageResult {
    same_origin(headers)?;
    let next = next_path(form);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let result = if signup {
        r.sign_up(field("email"), field("name"), field("password"))
            .await
    } else {
        r.sign_in(field("email"), field("password")).await
    };
    match result {
        Ok(session) => Ok(signed_in(r, headers, &session, &next)),
        Err(RegistryError::Api {
            status, message, ..
        }) => {
            let action = if signup { "/signup" } else { "/signin" };
            let title = if signup { "Sign up" } else { "Sign in" };
            Ok((
                status,
                layout(
                    title,
                    None,
                    "",
                    account_form(action, &next, field("email"), Some(&message)),
                ),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn sign_in(
    State(r): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    account_post(&r, &headers, &form, false).await
}

async fn sign_up(
    State(r): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    account_post(&r, &headers, &form, true).await
}

async fn sign_out(
    State(r): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let session = form_session(&r, &headers, &form).await?;
    r.sign_out(&session.token).await?;
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&clear_cookie(&r, &headers)) {
        response
            .headers_mut()
            .insert(http::header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn reports_page(State(r): State<Shared>, headers: HeaderMap) -> PageResult {
    let session = session_of(&r, &headers)
        .await?
        .ok_or_else(|| RegistryError::unauthorized("sign in as a registry admin"))?;
    if !session.user.admin {
        return Err(RegistryError::forbidden("only the registry's admins see reports").into());
    }
    let reports = r.reports().await?;
    let body = html! {
        h1 { "Reported reviews" }
        @if reports.is_empty() {
            p { "Nothing is reported." }
        } @else {
            table {
                thead { tr { th scope="col" { "Plugin" } th scope="col" { "Review" } th scope="col" { "Reported by" } th scope="col" { "Reason" } } }
                tbody {
                    @for p in &reports {
                        tr {
                            td { a href=(format!("/plugins/{}#reviews", p.package)) { (p.package) } }
                            td { (p.author_name) " (" (p.rating) "/5): " (p.body) }
                            td { (p.reporter_name) }
                            td { (p.reason) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Reports", Some(&session), "", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_from_a_package_cannot_run_script() {
        let html = render_markdown(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n<a href=\"https://example.com\" onclick=\"steal()\">ok</a>",
        );
        assert!(
            html.contains("<h3>Title</h3>"),
            "headings sit below the page's own: {html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("onclick"), "{html}");
        assert!(html.contains("href=\"https://example.com\""), "{html}");
    }

    #[test]
    fn sign_in_only_returns_to_paths_on_this_site() {
        let form = |next: &str| HashMap::from([("next".to_string(), next.to_string())]);
        assert_eq!(next_path(&form("/plugins/hello")), "/plugins/hello");
        assert_eq!(next_path(&form("//evil.example")), "/");
        assert_eq!(next_path(&form("https://evil.example")), "/");
        assert_eq!(next_path(&form("/\\evil.example")), "/");
    }
}

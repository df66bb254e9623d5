//! SEO delivery: the sitemap (`GET /api/content/sitemap.xml`) of the published, indexable
//! entries of every type with a `url-pattern`, under the `site-url` setting; a sitemap index with
//! pages when there are more URLs than `sitemap-page-size`.

use ucms_sdk::documents::Filter;
use ucms_sdk::{Request, Response, config};

use crate::access;
use crate::schema::ContentType;
use crate::store::{self, Stored};
use crate::time;
use crate::{ApiError, ApiResult};

/// The protocol's ceiling on URLs per sitemap file.
const MAX_PAGE_SIZE: u64 = 50_000;
const DEFAULT_PAGE_SIZE: u64 = 1_000;
const CHUNK: u64 = 500;

/// The published versions of `ty` that belong in the sitemap: live, in the default locale unless
/// the pattern names `{locale}`, and not marked `noindex`.
fn listed(ty: &ContentType) -> Filter {
    let mut parts = vec![Filter::eq("live", true)];
    if !ty.url_has_locale() {
        parts.push(Filter::eq("locale", ty.default_locale()));
    }
    if let Some(seo) = ty.seo_field() {
        let path = format!("published.{}.noindex", seo.name);
        parts.push(Filter::any([
            Filter::not(Filter::exists(path.clone())),
            Filter::is_null(path.clone()),
            Filter::eq(path, false),
        ]));
    }
    Filter::all(parts)
}

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn site_url() -> ApiResult<String> {
    let url: Option<String> = config::get("site-url")?;
    match url.map(|u| u.trim().trim_end_matches('/').to_string()) {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(u),
        _ => Err(ApiError::new(
            503,
            "sitemap_not_configured",
            "the sitemap needs the site's public address: set site-url (e.g. https://example.com) in [plugins.content.settings] of ucms.toml (or UCMS_PLUGINS__CONTENT__SETTINGS__SITE_URL)",
        )),
    }
}

fn page_size() -> ApiResult<u64> {
    let n: Option<i64> = config::get("sitemap-page-size")?;
    Ok(n.map_or(DEFAULT_PAGE_SIZE, |n| {
        n.clamp(1, MAX_PAGE_SIZE as i64) as u64
    }))
}

/// `GET /sitemap.xml[?page=N]`.
pub fn sitemap(req: &Request) -> ApiResult<Response> {
    let base = site_url()?;
    let size = page_size()?;
    // Types with a URL pattern that the caller may read in full (an `own` grant is no public list).
    let types: Vec<ContentType> = store::all_types()?
        .into_values()
        .filter(|t| t.url_pattern.is_some())
        .filter(|t| access::grant("read", &t.name).is_some_and(|g| g.own.is_none()))
        .collect();
    if types.is_empty() && !access::any("read") {
        return Err(access::denied("read", "sitemap.xml"));
    }
    let mut counts = Vec::with_capacity(types.len());
    for t in &types {
        counts.push(store::entries(&t.name).count(listed(t))?);
    }
    let total: u64 = counts.iter().sum();
    let pages = total.div_ceil(size).max(1);
    let page = match req.query("page") {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u64>()
                .ok()
                .filter(|n| (1..=pages).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_query(format!(
                        "page: the sitemap has pages 1 to {pages}; '{p}' is not one of them"
                    ))
                })?,
        ),
    };
    let body = match page {
        None if pages > 1 => index(&base, pages, &types, &counts)?,
        _ => urlset(&base, &types, &counts, (page.unwrap_or(1) - 1) * size, size)?,
    };
    Ok(crate::conditional::cached_bytes(
        req,
        body.into_bytes(),
        "application/xml; charset=utf-8",
        &crate::conditional::cache_control(ucms_sdk::auth::principal().is_anonymous()),
    ))
}

/// The sitemap index: one `<sitemap>` per page, `lastmod` the newest publication overall.
fn index(base: &str, pages: u64, types: &[ContentType], counts: &[u64]) -> ApiResult<String> {
    let mut newest: Option<i64> = None;
    for (t, n) in types.iter().zip(counts) {
        if *n == 0 {
            continue;
        }
        let last = store::entries(&t.name)
            .query()
            .filter(listed(t))
            .sort_desc("published-at")
            .first()?;
        if let Some(at) = last.and_then(|d| d.data.published_at) {
            newest = newest.max(Some(at));
        }
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    for p in 1..=pages {
        out.push_str("  <sitemap><loc>");
        out.push_str(&xml_escape(&format!(
            "{base}/api/content/sitemap.xml?page={p}"
        )));
        out.push_str("</loc>");
        if let Some(at) = newest {
            out.push_str(&format!("<lastmod>{}</lastmod>", time::format_ms(at)));
        }
        out.push_str("</sitemap>\n");
    }
    out.push_str("</sitemapindex>\n");
    Ok(out)
}

/// The `<urlset>` of `limit` URLs from `skip` on, walking the types in name order.
fn urlset(
    base: &str,
    types: &[ContentType],
    counts: &[u64],
    mut skip: u64,
    limit: u64,
) -> ApiResult<String> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    let mut left = limit;
    for (t, n) in types.iter().zip(counts) {
        if left == 0 {
            break;
        }
        if skip >= *n {
            skip -= n;
            continue;
        }
        let mut offset = skip;
        skip = 0;
        while left > 0 && offset < *n {
            let take = left.min(CHUNK);
            let docs = store::entries(&t.name)
                .query()
                .filter(listed(t))
                .sort_by("created-at", false)
                .sort_by("entry", false)
                .sort_by("locale", false)
                .offset(offset as u32)
                .limit(take as u32)
                .fetch()?
                .documents;
            if docs.is_empty() {
                break;
            }
            for d in &docs {
                url_line(&mut out, base, t, &d.data);
            }
            offset += docs.len() as u64;
            left -= docs.len() as u64;
        }
    }
    out.push_str("</urlset>\n");
    Ok(out)
}

fn url_line(out: &mut String, base: &str, ty: &ContentType, s: &Stored) {
    let empty = serde_json::Map::new();
    let fields = s.published.as_ref().unwrap_or(&empty);
    let Some(path) = ty.path_of(&s.entry, &s.locale, fields) else {
        return;
    };
    out.push_str("  <url><loc>");
    out.push_str(&xml_escape(&format!("{base}{path}")));
    out.push_str("</loc>");
    if let Some(at) = s.published_at.or(Some(s.updated_at)) {
        out.push_str(&format!("<lastmod>{}</lastmod>", time::format_ms(at)));
    }
    out.push_str("</url>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_fill_placeholders_and_xml_is_escaped() {
        let ty: ContentType = serde_json::from_value(json!({
            "name": "doc", "url-pattern": "/{locale}/a&b/{slug}/{id}",
            "fields": [{"name": "slug", "type": "slug"}]
        }))
        .unwrap();
        let fields = json!({"slug": "hello-world"}).as_object().unwrap().clone();
        assert_eq!(
            ty.path_of("e1", "pt-BR", &fields).as_deref(),
            Some("/pt-BR/a&b/hello-world/e1")
        );
        // An empty slug falls back to the id; other values are percent-encoded.
        let empty = json!({"slug": ""}).as_object().unwrap().clone();
        assert_eq!(
            ty.path_of("e1", "en", &empty).as_deref(),
            Some("/en/a&b/e1/e1")
        );
        assert_eq!(crate::schema::percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(
            xml_escape("https://x/?a=1&b=<2>\"'"),
            "https://x/?a=1&amp;b=&lt;2&gt;&quot;&apos;"
        );
    }

    #[test]
    fn url_patterns_are_checked() {
        let check = |p: &str| {
            let ty: ContentType = serde_json::from_value(json!({
                "name": "doc", "url-pattern": p,
                "fields": [{"name": "slug", "type": "slug"}, {"name": "title", "type": "short-text"}]
            }))
            .unwrap();
            ty.check(&Default::default()).remove("url-pattern")
        };
        assert_eq!(check("/blog/{slug}"), None);
        assert_eq!(check("/{locale}/{id}"), None);
        assert!(check("blog/{slug}").unwrap().contains("starting with '/'"));
        assert!(
            check("/blog/{title}")
                .unwrap()
                .contains("not a placeholder")
        );
        assert!(check("/blog/{slug").unwrap().contains("without its '}'"));
        assert!(check("/blog?x={slug}").unwrap().contains("'?'"));
        assert!(check("/blog").unwrap().contains("distinct URLs"));
    }
}

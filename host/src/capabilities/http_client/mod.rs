//! `ucms:host/http-client`: outbound HTTP requests, only where the manifest and the operator allow.
//!
//! Each plugin granted `http-client` gets its own reqwest client whose resolver and redirect policy
//! enforce its grant ([`egress`]). Each call has a timeout (never past the invocation's deadline)
//! and a response size cap; each invocation a cap on the number of calls.

pub mod egress;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ucms_manifest::{HostPattern, HttpClientGrant};
use wasmtime::component::{HasData, Linker};

use self::egress::{AddressRules, CheckedResolver, EgressDenied, Lookup};
use crate::metrics::Metrics;
use crate::runtime::health::Health;
use crate::wit::latest::ucms::host::http_client::{self as wit, HttpError, Request, Response};

const MAX_REDIRECTS: usize = 5;

/// A plugin's outbound HTTP client and the rules it runs under.
#[derive(Debug, Clone)]
pub struct HttpClientState {
    client: reqwest::Client,
    grant: Arc<HttpClientGrant>,
    addresses: AddressRules,
    timeout: Duration,
    max_response: usize,
}

impl HttpClientState {
    /// A client for `plugin`: destinations within `grant`, addresses outside the internal
    /// ranges unless in `internal_networks` (the policy's override for this plugin), names
    /// resolved by `lookup`.
    pub fn new(
        plugin: &str,
        grant: &HttpClientGrant,
        internal_networks: &[IpNet],
        lookup: Lookup,
        timeout: Duration,
        max_response: usize,
    ) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let grant = Arc::new(grant.clone());
        let addresses = AddressRules::new(internal_networks);
        let policy_grant = grant.clone();
        let redirect_rules = addresses.clone();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver {
                addresses: addresses.clone(),
                lookup,
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt
                        .error(EgressDenied(format!("more than {MAX_REDIRECTS} redirects")));
                }
                match check_url(&policy_grant, attempt.url(), &redirect_rules) {
                    Ok(()) => attempt.follow(),
                    Err(denied) => attempt.error(denied),
                }
            }))
            .no_proxy()
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .user_agent(format!(
                "ucms/{} (plugin {plugin})",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            client,
            grant,
            addresses,
            timeout,
            max_response,
        })
    }
}

/// The grant a plugin runs with: its manifest's hosts, plus — when the manifest says
/// `site-hosts = true` — the hosts the operator's policy lists for it
/// (`[policy.overrides.<id>] hosts`). Without `site-hosts` those only widen what the manifest
/// may ask for; they never reach a plugin that didn't ask the site to choose.
pub fn with_site_hosts(grant: &HttpClientGrant, site: &[HostPattern]) -> HttpClientGrant {
    let mut grant = grant.clone();
    if grant.site_hosts {
        grant.hosts.extend(site.iter().cloned());
    }
    grant
}

/// Checks a destination against the grant; IP literals against the internal ranges too (names are
/// checked by the resolver, after resolution).
fn check_url(
    grant: &HttpClientGrant,
    url: &url::Url,
    addresses: &AddressRules,
) -> Result<(), EgressDenied> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EgressDenied(format!(
            "'{}' URLs are not allowed; use http or https",
            url.scheme()
        )));
    }
    let (host, ip) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_ascii_lowercase(), None),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(std::net::IpAddr::V4(ip))),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(std::net::IpAddr::V6(ip))),
        None => return Err(EgressDenied("the URL has no host".into())),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    if !grant.allows(&host, port) {
        let granted: Vec<String> = grant.hosts.iter().map(ToString::to_string).collect();
        return Err(EgressDenied(if grant.site_hosts {
            format!(
                "{host}:{port} is not among the hosts this plugin may call ({}); the site's \
                 operator grants them in the policy, [policy.overrides.<plugin id>] hosts",
                if granted.is_empty() {
                    "none yet".to_string()
                } else {
                    granted.join(", ")
                }
            )
        } else {
            format!(
                "{host}:{port} is not among the hosts the manifest grants ({})",
                granted.join(", ")
            )
        }));
    }
    if let Some(ip) = ip {
        addresses.check(ip)?;
    }
    Ok(())
}

pub struct HttpCtx<'a> {
    pub plugin: &'a str,
    pub state: &'a HttpClientState,
    pub metrics: &'a Metrics,
    pub calls_made: &'a mut u32,
    pub max_calls: u32,
    /// Request and response body bytes moved so far in this invocation.
    pub bytes_moved: &'a mut u64,
    pub max_bytes: u64,
    pub health: &'a Health,
    pub deadline: Instant,
}

struct Http;

impl HasData for Http {
    type Data<'a> = HttpCtx<'a>;
}

/// Store data that can give the `ucms:host/http-client` host functions their view of the invocation.
pub trait HttpClientView: Send {
    fn http_client(&mut self) -> HttpCtx<'_>;
}

/// Links `ucms:host/http-client`.
pub fn add_to_linker<T: HttpClientView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Http>(linker, T::http_client)
}

impl HttpCtx<'_> {
    /// Counts body bytes against the invocation's `max-outbound-kib`.
    fn count_bytes(&mut self, bytes: u64) -> Result<(), HttpError> {
        if *self.bytes_moved + bytes > self.max_bytes {
            let message = format!(
                "this invocation's outbound requests would move more than {} KiB of bodies (limits.max-outbound-kib)",
                self.max_bytes / 1024
            );
            self.health
                .breach("max-outbound-kib", "egress_bytes_exceeded", &message);
            return Err(HttpError::LimitExceeded(message));
        }
        *self.bytes_moved += bytes;
        Ok(())
    }

    async fn send_checked(&mut self, request: Request) -> Result<Response, HttpError> {
        if *self.calls_made >= self.max_calls {
            let message = format!(
                "this invocation already made its {} outbound requests (limits.max-outbound-requests)",
                self.max_calls
            );
            self.health
                .breach("max-outbound-requests", "egress_limit_exceeded", &message);
            return Err(HttpError::LimitExceeded(message));
        }
        *self.calls_made += 1;
        self.count_bytes(request.body.len() as u64)?;
        let url = url::Url::parse(&request.url).map_err(|e| {
            HttpError::InvalidRequest(format!("'{}' is not a URL: {e}", request.url))
        })?;
        check_url(&self.state.grant, &url, &self.state.addresses)
            .map_err(|d| HttpError::Denied(d.0))?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            HttpError::InvalidRequest(format!("'{}' is not an HTTP method", request.method))
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("'{name}' is not a header name")))?;
            if name == reqwest::header::HOST {
                continue; // the URL decides where the request goes
            }
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                HttpError::InvalidRequest(format!("the value of header '{name}' is not valid"))
            })?;
            headers.append(name, value);
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(self.state.timeout)
            .min(self.state.timeout)
            .min(remaining);
        if timeout.is_zero() {
            return Err(HttpError::Timeout);
        }
        let send = self
            .state
            .client
            .request(method, url)
            .headers(headers)
            .body(request.body)
            .timeout(timeout)
            .send();
        let mut response = send.await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let cap = self.state.max_response;
        if response
            .content_length()
            .is_some_and(|len| len as usize > cap)
        {
            return Err(HttpError::ResponseTooLarge(cap as u64));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > cap {
                return Err(HttpError::ResponseTooLarge(cap as u64));
            }
            self.count_bytes(chunk.len() as u64)?;
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn classify(error: reqwest::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<EgressDenied>() {
            return HttpError::Denied(denied.0.clone());
        }
        source = e.source();
    }
    if error.is_timeout() {
        return HttpError::Timeout;
    }
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    HttpError::ConnectionFailed(message)
}

impl wit::Host for HttpCtx<'_> {
    #[tracing::instrument(
        name = "http-client.send",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        let started = Instant::now();
        let target = request.url.clone();
        let result = self.send_checked(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(HttpError::Denied(_)) => "denied",
            Err(HttpError::LimitExceeded(_)) => "limit",
            Err(HttpError::Timeout) => "timeout",
            Err(HttpError::ResponseTooLarge(_)) => "too_large",
            Err(_) => "error",
        };
        self.metrics.outbound_request(self.plugin, outcome);
        if let Err(HttpError::Denied(reason)) = &result {
            self.health.refused(
                "http-client",
                &format!(
                    "outbound request to {} refused: {reason}",
                    redact_url(&target)
                ),
            );
        } else {
            tracing::debug!(plugin = self.plugin, url = %redact_url(&target), outcome, elapsed_ms = started.elapsed().as_millis() as u64, "outbound request");
        }
        Ok(result)
    }
}

/// The URL without its query and credentials, which may carry secrets.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            url.set_query(None);
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

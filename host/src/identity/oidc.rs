//! OpenID Connect sign-in: the authorization code flow with PKCE (S256).
//!
//! `start` stores a state row (the PKCE verifier, the nonce and where to return, single-use, ten
//! minutes) under the SHA-256 of the `state` parameter and points the browser at the provider.
//! `callback` spends the state, exchanges the code at the token endpoint (client secret and
//! verifier), verifies the ID token against the provider's JWKS (RS256/384/512, ES256, EdDSA; `iss`,
//! `aud` = client id, `exp`, `nonce`) and maps it to an account: a linked identity, else the
//! account with the same verified email (linked from then on), else a new one when the provider
//! allows sign-up. Discovery documents and key sets are cached.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::flow_error::FlowError;
use super::{AuthError, Identity, User};
use crate::config::OidcProviderConfig;
use crate::db::{now_ms, on_db};

const STATE_TTL: Duration = Duration::from_secs(10 * 60);
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
const JWKS_TTL: Duration = Duration::from_secs(300);
const JWKS_RELOAD_MIN: Duration = Duration::from_secs(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Discovery documents and key sets of the configured providers, by provider name.
#[derive(Debug, Default)]
pub struct OidcCache {
    discovery: Mutex<HashMap<String, (Instant, Discovery)>>,
    jwks: Mutex<HashMap<String, (Instant, JwkSet)>>,
    http: OnceLock<reqwest::Client>,
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The query of the provider's redirect back to the callback.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: serde_json::Value,
}

fn upstream(code: &'static str, message: impl Into<String>) -> FlowError {
    FlowError::Upstream {
        code,
        message: message.into(),
    }
}

/// Whether `return_to` is a path on this site (not `//host` or `/\host`, which browsers treat as
/// another origin).
fn same_site_path(return_to: &str) -> bool {
    return_to.starts_with('/')
        && !return_to.starts_with("//")
        && !return_to.starts_with("/\\")
        && !return_to.chars().any(|c| c.is_control())
}

fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crate::digest::sha256(verifier.as_bytes()))
}

impl Identity {
    fn oidc_provider(&self, name: &str) -> Result<&OidcProviderConfig, FlowError> {
        self.auth_config()
            .oidc
            .get(name)
            .ok_or_else(|| FlowError::NotFound {
                code: "oidc_unknown_provider",
                message: format!(
                    "no OpenID Connect provider '{name}' is configured (add [auth.oidc.{name}] to ucms.toml)"
                ),
            })
    }

    fn oidc_http(&self) -> &reqwest::Client {
        self.oidc.http.get_or_init(|| {
            crate::install_crypto_provider();
            reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("ucms/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("a client with default TLS settings builds")
        })
    }

    async fn oidc_discovery(
        &self,
        name: &str,
        provider: &OidcProviderConfig,
    ) -> Result<Discovery, FlowError> {
        let cache = &self.oidc;
        if let Some((at, d)) = cache
            .discovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let issuer = provider.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let fail = |e: &dyn std::fmt::Display| {
            upstream(
                "oidc_discovery_failed",
                format!("cannot read the OpenID configuration of '{name}' at {url}: {e}"),
            )
        };
        let response = self
            .oidc_http()
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(&e))?;
        if !response.status().is_success() {
            return Err(fail(&format!("status {}", response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| fail(&e))?;
        let discovery: Discovery = serde_json::from_slice(&bytes).map_err(|e| fail(&e))?;
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(fail(&format!(
                "it names the issuer '{}', not the configured '{issuer}'",
                discovery.issuer
            )));
        }
        cache
            .discovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (Instant::now(), discovery.clone()));
        Ok(discovery)
    }

    async fn oidc_jwks(&self, name: &str, uri: &str, force: bool) -> Result<JwkSet, FlowError> {
        let cache = &self.oidc;
        if let Some((at, set)) = cache
            .jwks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && at.elapsed() < if force { JWKS_RELOAD_MIN } else { JWKS_TTL }
        {
            return Ok(set.clone());
        }
        let fail = |e: &dyn std::fmt::Display| {
            upstream(
                "oidc_jwks_failed",
                format!("cannot read the signing keys of '{name}' at {uri}: {e}"),
            )
        };
        let response = self
            .oidc_http()
            .get(uri)
            .send()
            .await
            .map_err(|e| fail(&e))?;
        if !response.status().is_success() {
            return Err(fail(&format!("status {}", response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| fail(&e))?;
        let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| fail(&e))?;
        cache
            .jwks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (Instant::now(), set.clone()));
        Ok(set)
    }

    /// The callback URL of provider `name`: configured, or derived from the request's origin.
    pub fn oidc_redirect_url(&self, name: &str, origin: &str) -> Result<String, FlowError> {
        let provider = self.oidc_provider(name)?;
        Ok(provider.redirect_url.clone().unwrap_or_else(|| {
            format!(
                "{}/api/ucms/auth/oidc/{name}/callback",
                origin.trim_end_matches('/')
            )
        }))
    }

    /// Starts a sign-in with provider `name`: stores the state and returns the URL of the
    /// provider's authorization endpoint to redirect the browser to.
    pub async fn oidc_start(
        &self,
        name: &str,
        return_to: Option<&str>,
        origin: &str,
    ) -> Result<String, FlowError> {
        let provider = self.oidc_provider(name)?;
        let return_to = return_to.unwrap_or("/admin/");
        if !same_site_path(return_to) {
            return Err(FlowError::bad_request(
                "invalid_return_to",
                format!("return_to must be a path on this site (like /admin/), not '{return_to}'"),
            ));
        }
        let discovery = self.oidc_discovery(name, provider).await?;
        let state = super::random::random_token::<32>();
        let nonce = super::random::random_token::<32>();
        let verifier = super::random::random_token::<32>();
        let hash = crate::digest::sha256(state.as_bytes()).to_vec();
        let expires = now_ms() + STATE_TTL.as_millis() as i64;
        // Spent and expired states are swept as new ones come: the table stays small.
        on_db!(self.db(), write, |pool| {
            sqlx::query("DELETE FROM oidc_states WHERE expires_at < $1")
                .bind(now_ms() - STATE_TTL.as_millis() as i64)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO oidc_states (hash, provider, verifier, nonce, return_to, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&hash)
            .bind(name)
            .bind(&verifier)
            .bind(&nonce)
            .bind(return_to)
            .bind(expires)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        let scopes = if provider.scopes.is_empty() {
            "openid email profile".to_string()
        } else {
            provider.scopes.join(" ")
        };
        let mut url = url::Url::parse(&discovery.authorization_endpoint).map_err(|e| {
            upstream(
                "oidc_discovery_failed",
                format!("the authorization endpoint of '{name}' is not a URL: {e}"),
            )
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", &self.oidc_redirect_url(name, origin)?)
            .append_pair("scope", &scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Finishes a sign-in: returns the account and the path to return to. Every failure is audited
    /// as `auth.oidc.failed`.
    pub async fn oidc_callback(
        &self,
        name: &str,
        params: &CallbackParams,
        origin: &str,
        client: &str,
    ) -> Result<(User, String), FlowError> {
        let result = self.oidc_callback_inner(name, params, origin).await;
        if let Err(e) = &result {
            self.audit(
                None,
                "auth.oidc.failed",
                Some(&format!("oidc:{name}")),
                serde_json::json!({ "code": e.code(), "reason": e.to_string(), "client": client }),
            )
            .await;
        }
        result
    }

    async fn oidc_callback_inner(
        &self,
        name: &str,
        params: &CallbackParams,
        origin: &str,
    ) -> Result<(User, String), FlowError> {
        let provider = self.oidc_provider(name)?;
        if let Some(error) = &params.error {
            return Err(FlowError::unauthorized(
                "oidc_provider_error",
                format!(
                    "the provider '{name}' refused the sign-in: {error}{}",
                    params
                        .error_description
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
            ));
        }
        let (Some(code), Some(state)) = (&params.code, &params.state) else {
            return Err(FlowError::bad_request(
                "oidc_bad_callback",
                "the callback needs the `code` and `state` query parameters the provider sends",
            ));
        };
        let bad_state = |why: &str| {
            FlowError::bad_request(
                "oidc_invalid_state",
                format!("the sign-in state {why}; start the sign-in again"),
            )
        };
        let hash = crate::digest::sha256(state.as_bytes()).to_vec();
        let now = now_ms();
        let spent = on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE oidc_states SET used_at = $1 WHERE hash = $2 AND provider = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(&hash)
            .bind(name)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        if spent != 1 {
            return Err(bad_state("is unknown or was already used"));
        }
        let (verifier, nonce, return_to, expires_at): (String, String, String, i64) =
            on_db!(self.db(), read, |pool| {
                sqlx::query_as(
                    "SELECT verifier, nonce, return_to, expires_at FROM oidc_states WHERE hash = $1",
                )
                .bind(&hash)
                .fetch_one(pool)
                .await
            })
            .map_err(FlowError::internal)?;
        if expires_at <= now {
            return Err(bad_state("expired"));
        }
        let discovery = self.oidc_discovery(name, provider).await?;
        let id_token = self
            .oidc_exchange(name, provider, &discovery, code, &verifier, origin)
            .await?;
        let claims = self
            .oidc_verify_id_token(name, provider, &discovery, &id_token, &nonce)
            .await?;
        let user = self.oidc_account(name, provider, &claims).await?;
        Ok((user, return_to))
    }

    async fn oidc_exchange(
        &self,
        name: &str,
        provider: &OidcProviderConfig,
        discovery: &Discovery,
        code: &str,
        verifier: &str,
        origin: &str,
    ) -> Result<String, FlowError> {
        let redirect = self.oidc_redirect_url(name, origin)?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier),
            ("client_id", provider.client_id.as_str()),
        ];
        let fail = |e: &dyn std::fmt::Display| {
            upstream(
                "oidc_token_exchange_failed",
                format!("the provider '{name}' did not exchange the code: {e}"),
            )
        };
        let body = serde_urlencoded_form(&form);
        let mut request = self
            .oidc_http()
            .post(&discovery.token_endpoint)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        if let Some(secret) = &provider.client_secret {
            request =
                request.basic_auth(form_encode(&provider.client_id), Some(form_encode(secret)));
        }
        let response = request.send().await.map_err(|e| fail(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| fail(&e))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if !status.is_success() {
            let error = value["error"].as_str().unwrap_or("no error code");
            return Err(fail(&format!("status {status}, {error}")));
        }
        value["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| fail(&"the answer has no id_token"))
    }

    async fn oidc_verify_id_token(
        &self,
        name: &str,
        provider: &OidcProviderConfig,
        discovery: &Discovery,
        id_token: &str,
        nonce: &str,
    ) -> Result<IdClaims, FlowError> {
        let bad = |why: String| {
            FlowError::unauthorized(
                "oidc_invalid_id_token",
                format!("the ID token from '{name}' is not valid: {why}"),
            )
        };
        let header = jsonwebtoken::decode_header(id_token).map_err(|e| bad(e.to_string()))?;
        let allowed = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ];
        if !allowed.contains(&header.alg) {
            return Err(bad(format!(
                "the algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let find = |set: &JwkSet| match &header.kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let mut set = self.oidc_jwks(name, &discovery.jwks_uri, false).await?;
        if find(&set).is_none() {
            set = self.oidc_jwks(name, &discovery.jwks_uri, true).await?;
        }
        let jwk = find(&set)
            .ok_or_else(|| bad("it is signed by a key the provider doesn't publish".into()))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 60;
        validation.set_issuer(&[discovery.issuer.as_str()]);
        validation.set_audience(&[provider.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map_err(|e| bad(e.to_string()))?
            .claims;
        let nonce_ok = claims
            .nonce
            .as_deref()
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
        if !nonce_ok {
            return Err(bad("its nonce doesn't match the sign-in's".into()));
        }
        Ok(claims)
    }

    async fn oidc_account(
        &self,
        name: &str,
        provider: &OidcProviderConfig,
        claims: &IdClaims,
    ) -> Result<User, FlowError> {
        let linked: Option<(String,)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2",
            )
            .bind(name)
            .bind(&claims.sub)
            .fetch_optional(pool)
            .await
        })
        .map_err(FlowError::internal)?;
        if let Some((user_id,)) = linked
            && let Some(user) = self
                .user_by_id(&user_id)
                .await
                .map_err(FlowError::internal)?
        {
            if user.disabled {
                return Err(AuthError::Disabled.into());
            }
            return Ok(user);
        }
        let no_account = |why: &str| FlowError::Forbidden {
            code: "oidc_no_account",
            message: format!(
                "no account matches this '{name}' sign-in ({why}); ask an administrator to create one"
            ),
        };
        let verified = claims.email_verified == serde_json::Value::Bool(true)
            || claims.email_verified == serde_json::Value::String("true".into());
        let Some(email) = claims.email.as_deref().filter(|_| verified) else {
            return Err(no_account("the provider vouches for no verified email"));
        };
        let email = email.trim().to_lowercase();
        if !provider.email_domains.is_empty() {
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            if !provider
                .email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
            {
                return Err(FlowError::Forbidden {
                    code: "oidc_email_domain",
                    message: format!(
                        "the email domain '{domain}' may not sign in with '{name}' (allowed: {})",
                        provider.email_domains.join(", ")
                    ),
                });
            }
        }
        let user = match self.find_user(&email).await.map_err(FlowError::internal)? {
            Some(user) => user,
            None if provider.allow_signup => {
                // The account signs in through the provider; its password is random and unknown.
                let password = format!("{}Aa1!", super::random::random_token::<24>());
                self.create_user(&email, &password, &provider.default_roles)
                    .await
                    .map_err(FlowError::internal)?
            }
            None => return Err(no_account("sign-up through this provider is off")),
        };
        if user.disabled {
            return Err(AuthError::Disabled.into());
        }
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO user_identities (provider, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(&claims.sub)
            .bind(&user.id)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        self.audit(
            Some(&format!("user:{}", user.id)),
            "auth.oidc.linked",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "provider": name, "subject": claims.sub }),
        )
        .await;
        Ok(user)
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 appendix B, also used for
/// the client credentials in HTTP Basic).
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn serde_urlencoded_form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn return_to_stays_on_the_site() {
        assert!(same_site_path("/admin/"));
        assert!(same_site_path("/admin/content?x=1"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "admin",
            "/a\nb",
        ] {
            assert!(!same_site_path(bad), "{bad}");
        }
    }
}

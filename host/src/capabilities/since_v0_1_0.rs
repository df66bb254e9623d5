//! The `ucms:host@0.1.0` imports, for components built with the 0.1 SDK: every 0.1.0 interface
//! survives unchanged in 0.2.0 (which only adds `documents`, `blobs`, `cache` and the `uploads` of
//! a request), so each `Host` impl here converts its arguments, calls the newest implementation
//! and converts the result back. Nothing here decides anything: when a capability changes, only
//! the conversions change.

use wasmtime::component::{HasData, Linker};

use super::auth::{AuthCtx, AuthView};
use super::config::{ConfigView, PluginSettings};
use super::events::{EventsCtx, EventsView};
use super::http_client::{HttpClientView, HttpCtx};
use super::kv::{KvCtx, KvView};
use super::log::{LogCtx, LogView};
use crate::wit::latest::ucms::host as new;
use crate::wit::v0_1_0::principal;
use crate::wit::v0_1_0::ucms::host as old;

/// Links the 0.1.0 version of the granted capabilities that existed in 0.1.0.
pub fn link<T>(
    linker: &mut Linker<T>,
    granted: &[ucms_manifest::Capability],
) -> wasmtime::Result<()>
where
    T: KvView + LogView + ConfigView + EventsView + AuthView + HttpClientView + 'static,
{
    use ucms_manifest::Capability;
    old::types::add_to_linker::<T, TypesOnly>(linker, |_| TypesOnly)?;
    for capability in granted {
        match capability {
            Capability::Kv => old::kv::add_to_linker::<T, Kv>(linker, T::kv)?,
            Capability::Log => old::log::add_to_linker::<T, Log>(linker, T::log)?,
            Capability::Config => old::config::add_to_linker::<T, Config>(linker, T::settings)?,
            Capability::Events => old::events::add_to_linker::<T, Events>(linker, T::events)?,
            Capability::Auth => old::auth::add_to_linker::<T, Auth>(linker, T::auth)?,
            Capability::HttpClient => {
                old::http_client::add_to_linker::<T, Http>(linker, T::http_client)?
            }
            // Introduced in 0.2.0 and 0.2.1: a 0.1.0 component can't import them.
            Capability::Documents | Capability::Blobs | Capability::Cache | Capability::Hooks => {}
        }
    }
    Ok(())
}

struct TypesOnly;
impl HasData for TypesOnly {
    type Data<'a> = TypesOnly;
}
impl old::types::Host for TypesOnly {}

struct Kv;
impl HasData for Kv {
    type Data<'a> = KvCtx<'a>;
}
struct Log;
impl HasData for Log {
    type Data<'a> = LogCtx<'a>;
}
struct Config;
impl HasData for Config {
    type Data<'a> = &'a PluginSettings;
}
struct Events;
impl HasData for Events {
    type Data<'a> = EventsCtx<'a>;
}
struct Auth;
impl HasData for Auth {
    type Data<'a> = AuthCtx<'a>;
}
struct Http;
impl HasData for Http {
    type Data<'a> = HttpCtx<'a>;
}

type Res<T, E> = wasmtime::Result<Result<T, E>>;

fn kv_error(e: new::kv::KvError) -> old::kv::KvError {
    use new::kv::KvError as N;
    use old::kv::KvError as O;
    match e {
        N::Invalid(m) => O::Invalid(m),
        N::QuotaExceeded(m) => O::QuotaExceeded(m),
        N::TypeMismatch(m) => O::TypeMismatch(m),
        N::Unavailable(m) => O::Unavailable(m),
    }
}

impl old::kv::Host for KvCtx<'_> {
    async fn get(&mut self, key: String) -> Res<Option<Vec<u8>>, old::kv::KvError> {
        Ok(new::kv::Host::get(self, key).await?.map_err(kv_error))
    }
    async fn set(&mut self, key: String, value: Vec<u8>) -> Res<(), old::kv::KvError> {
        Ok(new::kv::Host::set(self, key, value)
            .await?
            .map_err(kv_error))
    }
    async fn delete(&mut self, key: String) -> Res<bool, old::kv::KvError> {
        Ok(new::kv::Host::delete(self, key).await?.map_err(kv_error))
    }
    async fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Res<old::kv::KeyPage, old::kv::KvError> {
        Ok(new::kv::Host::list_keys(self, prefix, cursor, limit)
            .await?
            .map(|p| old::kv::KeyPage {
                keys: p.keys,
                next_cursor: p.next_cursor,
            })
            .map_err(kv_error))
    }
    async fn increment(&mut self, key: String, delta: i64) -> Res<i64, old::kv::KvError> {
        Ok(new::kv::Host::increment(self, key, delta)
            .await?
            .map_err(kv_error))
    }
    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Res<bool, old::kv::KvError> {
        Ok(new::kv::Host::compare_and_swap(self, key, expected, new)
            .await?
            .map_err(kv_error))
    }
}

impl old::log::Host for LogCtx<'_> {
    async fn write(
        &mut self,
        level: old::log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        use new::log::Level as N;
        use old::log::Level as O;
        let level = match level {
            O::Trace => N::Trace,
            O::Debug => N::Debug,
            O::Info => N::Info,
            O::Warn => N::Warn,
            O::Error => N::Error,
        };
        new::log::Host::write(self, level, message, fields).await
    }
}

impl old::config::Host for &PluginSettings {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        new::config::Host::get(self, key).await
    }
    async fn get_all(&mut self) -> wasmtime::Result<String> {
        new::config::Host::get_all(self).await
    }
    async fn get_secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        new::config::Host::get_secret(self, name).await
    }
}

impl old::events::Host for EventsCtx<'_> {
    async fn publish(
        &mut self,
        topic: String,
        key: Option<String>,
        payload: Vec<u8>,
    ) -> Res<String, old::events::PublishError> {
        use new::events::PublishError as N;
        use old::events::PublishError as O;
        Ok(new::events::Host::publish(self, topic, key, payload)
            .await?
            .map_err(|e| match e {
                N::NotPermitted(m) => O::NotPermitted(m),
                N::Invalid(m) => O::Invalid(m),
                N::Unavailable(m) => O::Unavailable(m),
            }))
    }
}

impl old::auth::Host for AuthCtx<'_> {
    async fn current(&mut self) -> wasmtime::Result<old::types::Principal> {
        Ok(principal(new::auth::Host::current(self).await?))
    }
    async fn check(&mut self, permission: String) -> wasmtime::Result<bool> {
        new::auth::Host::check(self, permission).await
    }
}

impl old::http_client::Host for HttpCtx<'_> {
    async fn send(
        &mut self,
        request: old::http_client::Request,
    ) -> Res<old::http_client::Response, old::http_client::HttpError> {
        use new::http_client::HttpError as N;
        use old::http_client::HttpError as O;
        let request = new::http_client::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        Ok(new::http_client::Host::send(self, request)
            .await?
            .map(|r| old::http_client::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(|e| match e {
                N::Denied(m) => O::Denied(m),
                N::InvalidRequest(m) => O::InvalidRequest(m),
                N::LimitExceeded(m) => O::LimitExceeded(m),
                N::Timeout => O::Timeout,
                N::ResponseTooLarge(n) => O::ResponseTooLarge(n),
                N::ConnectionFailed(m) => O::ConnectionFailed(m),
            }))
    }
}

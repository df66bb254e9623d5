//! The manifest as written: serde structs that keep source spans for validation messages.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_spanned::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawManifest {
    pub id: Spanned<String>,
    pub version: Spanned<String>,
    pub publisher: Spanned<String>,
    pub description: Spanned<String>,
    pub license: Option<Spanned<String>>,
    pub homepage: Option<Spanned<String>>,
    #[serde(default)]
    pub categories: Vec<Spanned<String>>,
    pub api: Spanned<String>,
    #[serde(default)]
    pub dependencies: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub capabilities: RawCapabilities,
    #[serde(default)]
    pub permissions: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub subscriptions: Vec<Spanned<RawSubscription>>,
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<RawSetting>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub limits: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    pub hooks: Vec<Spanned<RawHook>>,
    #[serde(default)]
    pub schedules: Vec<Spanned<RawSchedule>>,
    #[serde(default)]
    pub admin_pages: Vec<Spanned<RawAdminPage>>,
    #[serde(default)]
    pub provides: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub requires: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHook {
    pub point: Spanned<String>,
    pub priority: Option<Spanned<i64>>,
    pub on_failure: Option<Spanned<String>>,
    pub timeout_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub name: Spanned<String>,
    pub cron: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminPage {
    pub path: Spanned<String>,
    pub title: Spanned<String>,
    pub entry: Spanned<String>,
    pub permission: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCapabilities {
    pub kv: Option<Spanned<Toggle<NoScopes>>>,
    pub log: Option<Spanned<Toggle<NoScopes>>>,
    pub config: Option<Spanned<Toggle<NoScopes>>>,
    pub auth: Option<Spanned<Toggle<NoScopes>>>,
    pub events: Option<Spanned<Toggle<RawEvents>>>,
    pub http_client: Option<Spanned<Toggle<RawHttpClient>>>,
    pub documents: Option<Spanned<Toggle<RawDocuments>>>,
    pub blobs: Option<Spanned<Toggle<RawBlobs>>>,
    pub cache: Option<Spanned<Toggle<NoScopes>>>,
    pub hooks: Option<Spanned<Toggle<NoScopes>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDocuments {
    pub max_documents: Option<Spanned<i64>>,
    pub max_mib: Option<Spanned<i64>>,
    #[serde(default)]
    pub indexes: Vec<Spanned<RawIndex>>,
    #[serde(default)]
    pub search: Vec<Spanned<RawSearch>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIndex {
    pub collection: Spanned<String>,
    pub name: Spanned<String>,
    pub fields: Vec<Spanned<String>>,
    #[serde(default)]
    pub unique: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSearch {
    pub collection: Spanned<String>,
    pub fields: Vec<Spanned<String>>,
    pub language: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBlobs {
    pub max_mib: Option<Spanned<i64>>,
    pub max_blob_mib: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoScopes {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvents {
    #[serde(default)]
    pub publish: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHttpClient {
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub site_hosts: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub method: Spanned<String>,
    pub path: Spanned<String>,
    pub permission: Option<Spanned<String>>,
    pub public: Option<Spanned<bool>>,
    pub upload: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubscription {
    pub topic: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSetting {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub default: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    pub required: bool,
}

/// A capability switch: `kv = true`, `kv = false`, or a table of scopes (`events = { publish = [...] }`).
pub(crate) enum Toggle<T> {
    Off,
    On(T),
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ToggleVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ToggleVisitor<T> {
            type Value = Toggle<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a table of scopes")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v {
                    Toggle::On(T::default())
                } else {
                    Toggle::Off
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Toggle::On)
            }
        }

        deserializer.deserialize_any(ToggleVisitor(PhantomData))
    }
}

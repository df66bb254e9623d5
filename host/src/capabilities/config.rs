//! `ucms:host/config`: the plugin's settings and secrets.
//!
//! Settings are resolved once, when the plugin loads: each setting the manifest declares takes the
//! operator's value (from `ucms.toml` or `UCMS_…` variables), else the value saved from the admin
//! (`PUT /api/ucms/plugins/{id}/settings`, kept in `plugin_settings`), else its default, and must
//! have the declared type. The operator's values are *locked*: the admin shows them and can't
//! change them. A saved value the manifest no longer accepts (after an upgrade) is skipped with a
//! warning and kept, so a rollback finds it. A required setting without a value stops the plugin
//! from loading, with a message that says where to set it. Secrets are only those the manifest
//! declares, and come only from the operator.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use ucms_manifest::Manifest;
use wasmtime::component::{HasData, Linker};

use crate::config::PluginConfig;
use crate::wit::latest::ucms::host::config as wit;

/// A plugin's resolved settings and secrets.
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    settings: Map<String, Value>,
    secrets: BTreeMap<String, String>,
    /// Settings the operator's configuration sets: not editable from the admin.
    locked: std::collections::BTreeSet<String>,
    /// Saved values skipped because the manifest does not accept them, with the reason.
    skipped: BTreeMap<String, String>,
}

/// Keys in `ucms.toml` and environment variables compare with `_` and `-` alike.
fn normalize(key: &str) -> String {
    key.to_ascii_lowercase().replace('_', "-")
}

impl PluginSettings {
    /// `operator` is the site's configuration for the plugin; `saved` the values saved from the
    /// admin (an empty map when none).
    pub fn resolve(
        manifest: &Manifest,
        operator: &PluginConfig,
        saved: &Map<String, Value>,
    ) -> anyhow::Result<Self> {
        let id = manifest.id.as_str();
        let given: BTreeMap<String, &toml::Value> = operator
            .settings
            .iter()
            .map(|(k, v)| (normalize(k), v))
            .collect();
        let mut settings = Map::new();
        let mut locked = std::collections::BTreeSet::new();
        let mut skipped = BTreeMap::new();
        for (name, spec) in &manifest.settings {
            let value = match (given.get(&normalize(name)), saved.get(name)) {
                (Some(v), _) => {
                    locked.insert(name.clone());
                    Some(serde_json::to_value(v)?)
                }
                (None, Some(v)) if spec.kind.accepts(v) => Some(v.clone()),
                (None, Some(v)) => {
                    tracing::warn!(plugin = id, setting = %name, value = %v, "the value saved from the admin is not a {} any more; using the default", spec.kind);
                    skipped.insert(
                        name.clone(),
                        format!("the saved value {v} is not a {}", spec.kind),
                    );
                    spec.default.clone()
                }
                (None, None) => spec.default.clone(),
            };
            match value {
                Some(v) if !spec.kind.accepts(&v) => anyhow::bail!(
                    "setting '{name}' of plugin '{id}' must be a {}, but is {v}\n  hint: fix [plugins.{id}.settings] {name} in ucms.toml (or UCMS_PLUGINS__{}__SETTINGS__{})",
                    spec.kind,
                    env_segment(id),
                    env_segment(name)
                ),
                Some(v) => {
                    settings.insert(name.clone(), v);
                }
                None if spec.required => anyhow::bail!(
                    "plugin '{id}' needs the setting '{name}' ({})\n  hint: set [plugins.{id}.settings] {name} in ucms.toml, or UCMS_PLUGINS__{}__SETTINGS__{}",
                    spec.description,
                    env_segment(id),
                    env_segment(name)
                ),
                None => {}
            }
        }
        for key in given.keys() {
            if !manifest.settings.keys().any(|n| normalize(n) == *key) {
                tracing::warn!(plugin = id, setting = %key, "ucms.toml sets a setting the plugin does not declare; it is ignored");
            }
        }
        let declared: BTreeMap<String, &String> =
            manifest.secrets.keys().map(|k| (normalize(k), k)).collect();
        let mut secrets = BTreeMap::new();
        for (key, value) in &operator.secrets {
            match declared.get(&normalize(key)) {
                Some(name) => {
                    secrets.insert((*name).clone(), value.clone());
                }
                None => {
                    tracing::warn!(plugin = id, secret = %key, "ucms.toml sets a secret the plugin does not declare; it is ignored")
                }
            }
        }
        Ok(Self {
            settings,
            secrets,
            locked,
            skipped,
        })
    }

    pub fn settings(&self) -> &Map<String, Value> {
        &self.settings
    }

    /// Whether the operator's configuration sets `name` (so the admin can't change it).
    pub fn is_locked(&self, name: &str) -> bool {
        self.locked.contains(name)
    }

    /// Saved values that were skipped, by setting, with why.
    pub fn skipped(&self) -> &BTreeMap<String, String> {
        &self.skipped
    }
}

fn env_segment(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

struct Config;

impl HasData for Config {
    type Data<'a> = &'a PluginSettings;
}

/// Store data that can give the `ucms:host/config` host functions the plugin's settings.
pub trait ConfigView: Send {
    fn settings(&mut self) -> &PluginSettings;
}

/// Links `ucms:host/config`.
pub fn add_to_linker<T: ConfigView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Config>(linker, T::settings)
}

impl wit::Host for &PluginSettings {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).map(Value::to_string))
    }

    async fn get_all(&mut self) -> wasmtime::Result<String> {
        Ok(Value::Object(self.settings.clone()).to_string())
    }

    async fn get_secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.secrets.get(&name).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
            id = "greeter"
            version = "1.0.0"
            publisher = "acme"
            description = "d"
            api = "^0.1"
            [settings.greeting]
            type = "string"
            default = "Hello"
            [settings.max-items]
            type = "integer"
            required = true
            [secrets]
            api-key = "the key"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn operator_values_defaults_and_types() {
        let mut operator = PluginConfig::default();
        operator
            .settings
            .insert("max_items".into(), toml::Value::Integer(5));
        operator.secrets.insert("api_key".into(), "s3cret".into());
        operator.secrets.insert("undeclared".into(), "x".into());
        let s = PluginSettings::resolve(&manifest(), &operator, &Map::new()).unwrap();
        assert_eq!(s.settings["greeting"], "Hello");
        assert_eq!(s.settings["max-items"], 5);
        assert_eq!(s.secrets.get("api-key").map(String::as_str), Some("s3cret"));
        assert!(!s.secrets.contains_key("undeclared"));

        let missing = PluginSettings::resolve(&manifest(), &PluginConfig::default(), &Map::new())
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("UCMS_PLUGINS__GREETER__SETTINGS__MAX_ITEMS"),
            "{missing}"
        );

        operator
            .settings
            .insert("max-items".into(), toml::Value::String("five".into()));
        operator.settings.remove("max_items");
        let wrong = PluginSettings::resolve(&manifest(), &operator, &Map::new()).unwrap_err();
        assert!(wrong.to_string().contains("must be a integer"), "{wrong}");
    }

    #[test]
    fn saved_values_sit_between_the_operator_and_the_defaults() {
        let mut operator = PluginConfig::default();
        operator
            .settings
            .insert("max_items".into(), toml::Value::Integer(5));
        let saved: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "greeting": "Hi", "max-items": 9
        }))
        .unwrap();
        let s = PluginSettings::resolve(&manifest(), &operator, &saved).unwrap();
        assert_eq!(s.settings["greeting"], "Hi", "saved beats the default");
        assert_eq!(s.settings["max-items"], 5, "the operator beats saved");
        assert!(s.is_locked("max-items") && !s.is_locked("greeting"));

        // A saved value of the wrong type (the manifest changed) falls back, and says so.
        let saved: Map<String, Value> =
            serde_json::from_value(serde_json::json!({ "greeting": 3 })).unwrap();
        let s = PluginSettings::resolve(&manifest(), &operator, &saved).unwrap();
        assert_eq!(s.settings["greeting"], "Hello");
        assert!(
            s.skipped()["greeting"].contains("not a string"),
            "{:?}",
            s.skipped()
        );

        // A required setting may come from the admin alone.
        let saved: Map<String, Value> =
            serde_json::from_value(serde_json::json!({ "max-items": 7 })).unwrap();
        let s = PluginSettings::resolve(&manifest(), &PluginConfig::default(), &saved).unwrap();
        assert_eq!(s.settings["max-items"], 7);
    }
}

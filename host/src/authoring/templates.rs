//! `ucms plugin new`: a plugin project that builds, passes its own tests and runs as it is, in
//! Rust (from one of several templates), TypeScript or Python. The files are in `host/templates/`,
//! with `@NAME@` and the SDK dependencies filled in.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ucms_manifest::{MANIFEST_FILE, PluginId};

use super::Lang;

/// Where this binary's SDKs were, when it was built from a checkout.
const RUST_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/rust");
const RUST_TESTING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/rust-testing");
const TS_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/ts");
const PYTHON_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/python");

/// What a new plugin starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A greeting and notes in the key-value store, one route behind a permission.
    Default,
    /// A REST resource (list, create, read, replace, delete) over documents.
    RestResource,
    /// An event subscriber with a schedule.
    EventSubscriber,
    /// Relays events to a webhook endpoint with `http-client`, settings and a secret.
    WebhookRelay,
    /// An admin page (`assets/admin/index.html`) and the routes it calls.
    AdminPage,
}

impl Template {
    pub const ALL: [Template; 5] = [
        Self::Default,
        Self::RestResource,
        Self::EventSubscriber,
        Self::WebhookRelay,
        Self::AdminPage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::RestResource => "rest-resource",
            Self::EventSubscriber => "event-subscriber",
            Self::WebhookRelay => "webhook-relay",
            Self::AdminPage => "admin-page",
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .with_context(|| {
                format!(
                    "there is no template '{name}'\n  hint: pick one of {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }

    fn summary(self) -> &'static str {
        match self {
            Self::Default => "a greeting and notes in the key-value store",
            Self::RestResource => "a REST resource over documents",
            Self::EventSubscriber => "an event subscriber with a schedule",
            Self::WebhookRelay => "a webhook relay with http-client",
            Self::AdminPage => "a plugin with an admin page",
        }
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewOptions<'a> {
    /// The plugin id (also the crate or package name).
    pub name: &'a str,
    pub dir: &'a Path,
    pub lang: Lang,
    pub template: Template,
    /// A local SDK checkout to depend on instead of the published one (the language's SDK
    /// folder: `sdk/rust`, `sdk/ts` or `sdk/python`).
    pub sdk_path: Option<&'a Path>,
}

macro_rules! template {
    ($($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../templates/", $path)))),+]
    };
}

const RUST_COMMON: &[(&str, &str)] = template!["rust/common/Cargo.toml", "rust/common/README.md"];
const RUST_DEFAULT: &[(&str, &str)] = template![
    "rust/default/ucms-plugin.toml",
    "rust/default/src/lib.rs",
    "rust/default/tests/plugin.rs",
];
const RUST_REST: &[(&str, &str)] = template![
    "rust/rest-resource/ucms-plugin.toml",
    "rust/rest-resource/src/lib.rs",
    "rust/rest-resource/tests/plugin.rs",
];
const RUST_EVENTS: &[(&str, &str)] = template![
    "rust/event-subscriber/ucms-plugin.toml",
    "rust/event-subscriber/src/lib.rs",
    "rust/event-subscriber/tests/plugin.rs",
];
const RUST_WEBHOOK: &[(&str, &str)] = template![
    "rust/webhook-relay/ucms-plugin.toml",
    "rust/webhook-relay/src/lib.rs",
    "rust/webhook-relay/tests/plugin.rs",
];
const RUST_ADMIN: &[(&str, &str)] = template![
    "rust/admin-page/ucms-plugin.toml",
    "rust/admin-page/src/lib.rs",
    "rust/admin-page/tests/plugin.rs",
    "rust/admin-page/assets/admin/index.html",
];
const TS_DEFAULT: &[(&str, &str)] = template![
    "ts/default/package.json",
    "ts/default/tsconfig.json",
    "ts/default/ucms-plugin.toml",
    "ts/default/src/index.ts",
    "ts/default/test/plugin.test.mjs",
    "ts/default/README.md",
];
const PYTHON_DEFAULT: &[(&str, &str)] = template![
    "python/default/pyproject.toml",
    "python/default/ucms-plugin.toml",
    "python/default/src/app.py",
    "python/default/tests/test_plugin.py",
    "python/default/README.md",
];
const GITIGNORE: &str = include_str!("../../templates/rust/common/gitignore");

/// The files of a new plugin, as (path in the project, template text).
fn files(lang: Lang, template: Template) -> anyhow::Result<Vec<(String, &'static str)>> {
    // `rust/default/src/lib.rs` → `src/lib.rs`: the language and template folders go.
    let strip = |list: &'static [(&str, &'static str)]| {
        list.iter()
            .map(|(path, text)| {
                let rest = path.splitn(3, '/').nth(2).unwrap_or(path);
                (rest.to_string(), *text)
            })
            .collect::<Vec<_>>()
    };
    let mut out = vec![(".gitignore".to_string(), GITIGNORE)];
    match lang {
        Lang::Rust => {
            out.extend(strip(RUST_COMMON));
            let chosen = match template {
                Template::Default => RUST_DEFAULT,
                Template::RestResource => RUST_REST,
                Template::EventSubscriber => RUST_EVENTS,
                Template::WebhookRelay => RUST_WEBHOOK,
                Template::AdminPage => RUST_ADMIN,
            };
            out.extend(strip(chosen));
        }
        Lang::TypeScript | Lang::Python if template != Template::Default => bail!(
            "the {} template exists for Rust plugins only so far\n  hint: use --lang rust, or start from the default template",
            template.name()
        ),
        Lang::TypeScript => out.extend(strip(TS_DEFAULT)),
        Lang::Python => out.extend(strip(PYTHON_DEFAULT)),
    }
    Ok(out)
}

/// An SDK folder: the one given, or this binary's checkout.
fn local_sdk(given: Option<&Path>, checkout: &str) -> anyhow::Result<Option<PathBuf>> {
    match given {
        Some(path) => {
            Ok(Some(path.canonicalize().with_context(|| {
                format!("no SDK at {}", path.display())
            })?))
        }
        None => Ok(Path::new(checkout).canonicalize().ok()),
    }
}

/// Creates a plugin project in `dir` that builds, tests and runs as it is. Returns the files
/// written.
pub fn new_plugin(options: &NewOptions<'_>) -> anyhow::Result<Vec<PathBuf>> {
    let name = options.name;
    let dir = options.dir;
    PluginId::new(name).map_err(anyhow::Error::msg)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty\n  hint: pick another name or --dir",
            dir.display()
        );
    }
    let files = files(options.lang, options.template)?;
    let version = env!("CARGO_PKG_VERSION");
    let mut replacements: Vec<(&str, String)> = vec![
        ("@NAME@", name.to_string()),
        ("@TEMPLATE@", options.template.summary().to_string()),
    ];
    match options.lang {
        Lang::Rust => {
            let sdk = local_sdk(options.sdk_path, RUST_SDK)?;
            let testing = match &sdk {
                Some(sdk) => sdk
                    .parent()
                    .map(|p| p.join("rust-testing"))
                    .filter(|p| p.is_dir())
                    .or_else(|| Path::new(RUST_TESTING).canonicalize().ok()),
                None => None,
            };
            let dependency = |path: &Option<PathBuf>| match path {
                Some(path) => format!("{{ path = {:?} }}", path.display().to_string()),
                None => format!("\"{version}\""),
            };
            replacements.push(("@SDK@", dependency(&sdk)));
            replacements.push(("@TESTING@", dependency(&testing)));
        }
        Lang::TypeScript => {
            let sdk = local_sdk(options.sdk_path, TS_SDK)?;
            let spec = match sdk {
                Some(path) => format!("file:{}", path.display()),
                None => format!("^{version}"),
            };
            replacements.push(("@TS_SDK@", spec));
        }
        Lang::Python => {
            let sdk = local_sdk(options.sdk_path, PYTHON_SDK)?;
            let spec = match sdk {
                Some(path) => format!("ucms-sdk @ file://{}", path.display()),
                None => format!("ucms-sdk>={version}"),
            };
            replacements.push(("@PY_SDK@", spec));
            replacements.push((
                "@COMPONENTIZE_PY@",
                super::python::COMPONENTIZE_PY.to_string(),
            ));
        }
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let mut content = text.to_string();
        for (from, to) in &replacements {
            content = content.replace(from, to);
        }
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, content)
            .with_context(|| format!("cannot write {}", target.display()))?;
        written.push(target);
    }
    debug_assert!(written.iter().any(|p| p.ends_with(MANIFEST_FILE)));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_manifest_is_valid() {
        let mut checked = 0;
        for (lang, templates) in [
            (Lang::Rust, Template::ALL.to_vec()),
            (Lang::TypeScript, vec![Template::Default]),
            (Lang::Python, vec![Template::Default]),
        ] {
            for template in templates {
                let files = files(lang, template).unwrap();
                let manifest = files
                    .iter()
                    .find(|(p, _)| p == MANIFEST_FILE)
                    .map(|(_, t)| t.replace("@NAME@", "my-plugin"))
                    .unwrap_or_else(|| panic!("{lang:?} {template:?} has a manifest"));
                ucms_manifest::Manifest::parse(&manifest)
                    .unwrap_or_else(|e| panic!("{lang:?} {template:?}: {e}"));
                checked += 1;
            }
        }
        assert_eq!(checked, 7);
    }

    #[test]
    fn templates_are_rust_only_for_now() {
        let err = files(Lang::TypeScript, Template::RestResource).unwrap_err();
        assert!(err.to_string().contains("Rust plugins only"), "{err}");
    }
}

//! The manifest reference: every key `ucms-plugin.toml` accepts, with its type and meaning, and
//! the Markdown page (`docs/manifest-reference.md`) generated from it.
//!
//! The keys are checked against the parser itself: the tests read the field names serde's
//! derive gives every raw struct (by running its `Deserialize` against a deserializer that
//! records them) and fail when a key is parsed but not documented, or documented but not
//! parsed; another test fails when the page in docs/ differs from [`markdown`]. So the page
//! can't drift from the code: regenerate it with `cargo xtask docs`.

use std::fmt::Write as _;

/// One key of the manifest.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its path: `capabilities.documents.indexes[].unique`, `settings.<name>.type`.
    pub path: &'static str,
    /// Its TOML type, and the values it takes.
    pub kind: &'static str,
    /// `required`, or the default when absent.
    pub default: &'static str,
    pub doc: &'static str,
}

/// The sections of the page, in order: a table name and a sentence about it.
pub const SECTIONS: &[(&str, &str)] = &[
    (
        "",
        "Who the plugin is and which `ucms:host` API it targets. All at the top of the file.",
    ),
    (
        "capabilities",
        "The `ucms:host` interfaces the plugin may import, each `true`, `false` or a table of scopes. A component importing an interface its manifest doesn't grant is refused at install (`undeclared_import`); granting one the component doesn't import is allowed (it is not linked). Installing shows each grant for consent.",
    ),
    (
        "capabilities.documents",
        "`documents = {}` or a table: quotas within the operator's ceilings, and the indexes and full-text search the host creates when the plugin is installed.",
    ),
    (
        "capabilities.documents.indexes[]",
        "An index over document fields.",
    ),
    (
        "capabilities.documents.search[]",
        "Full-text search over some fields of a collection.",
    ),
    (
        "capabilities.blobs",
        "`blobs = {}` or a table of quotas, within the operator's ceilings.",
    ),
    (
        "capabilities.events",
        "Publishing events. Subscribing is `[[subscriptions]]`.",
    ),
    (
        "capabilities.http-client",
        "Outbound HTTP. After DNS resolution, loopback, private and link-local addresses are refused unless the operator's policy opens them for the plugin (`[policy.overrides.ID] internal-networks`).",
    ),
    (
        "permissions",
        "Permissions the plugin defines, `\"name\" = \"what it allows\"`. Site-wide they are named `ID.name`; roles grant them, and routes and admin pages require them.",
    ),
    (
        "routes[]",
        "The HTTP routes the plugin serves under `/api/ID`. The host matches the path, authenticates the caller and checks the permission before the plugin runs.",
    ),
    (
        "subscriptions[]",
        "Topics whose events the plugin receives through its `event-handler` export, at least once.",
    ),
    (
        "settings.<name>",
        "Settings the operator may set in `ucms.toml` (`[plugins.ID.settings]`) or with `UCMS_PLUGINS__ID__SETTINGS__NAME`; the plugin reads them with `config`. A plugin whose required setting is missing or of the wrong type doesn't load.",
    ),
    (
        "secrets",
        "Secrets the plugin reads with `config` (`\"name\" = \"what it is\"`), set in `[plugins.ID.secrets]`; never logged.",
    ),
    (
        "limits",
        "Limits the plugin asks for; unset ones get the policy's defaults (`[policy.defaults]`; memory 64 MiB, 5 s, 1 MiB requests, 4 MiB responses, 64 instances, 16 outbound requests unless the operator says otherwise). Asking above the policy's ceiling (`[policy.ceilings]`) refuses the plugin with the ceiling in the message.",
    ),
    (
        "dependencies",
        "Other plugins this one needs, `id = \"version requirement\"`; the resolver installs them first.",
    ),
    (
        "hooks[]",
        "Hook points of other plugins this plugin joins; the host calls its `hooks` export in priority order (needs a component built for `ucms:host` 0.2.1).",
    ),
    (
        "schedules[]",
        "Cron schedules; each tick runs the `scheduler` export once across all nodes (needs 0.2.1).",
    ),
    (
        "admin-pages[]",
        "Pages the plugin adds to the admin UI, shipped in the package under `assets/`.",
    ),
    (
        "provides",
        "Interfaces (in the dependency sense) this plugin provides: `\"name\" = \"version\"`.",
    ),
    (
        "requires",
        "Interfaces some installed plugin must provide: `\"name\" = \"version requirement\"`.",
    ),
];

/// Every key, by section.
pub const KEYS: &[Key] = &[
    Key {
        path: "id",
        kind: "string: 2–64 lower-case letters, digits and single dashes, starting with a letter; not `ucms`, `admin`, `api`, `static`, `assets`",
        default: "required",
        doc: "The plugin's id: its URL prefix (`/api/ID`), the prefix of its permissions, its key in `ucms.toml`.",
    },
    Key {
        path: "version",
        kind: "string: a semantic version",
        default: "required",
        doc: "This build's version. Installing an older version over a newer one needs `--allow-downgrade`.",
    },
    Key {
        path: "publisher",
        kind: "string: 1–64 of `a-z`, `0-9`, `-`",
        default: "required",
        doc: "Who publishes it; a package must be signed by one of this publisher's keys.",
    },
    Key {
        path: "description",
        kind: "string: 1–500 characters",
        default: "required",
        doc: "One sentence shown in listings and on consent screens.",
    },
    Key {
        path: "license",
        kind: "string: an SPDX expression",
        default: "none",
        doc: "The plugin's license.",
    },
    Key {
        path: "homepage",
        kind: "string: an http(s) URL",
        default: "none",
        doc: "Where to learn more.",
    },
    Key {
        path: "categories",
        kind: "array of strings: `a-z`, `0-9`, `-`",
        default: "`[]`",
        doc: "Marketplace categories.",
    },
    Key {
        path: "api",
        kind: "string: a version requirement",
        default: "required",
        doc: "The `ucms:host` API versions the plugin works with, for example `\"^0.2\"`. Must match a version the host supports and the version the SDK stamped into the component.",
    },
    Key {
        path: "dependencies",
        kind: "table of `id = \"requirement\"`",
        default: "`{}`",
        doc: "See [dependencies](#dependencies).",
    },
    Key {
        path: "capabilities",
        kind: "table",
        default: "`{}` (nothing)",
        doc: "See [capabilities](#capabilities).",
    },
    Key {
        path: "permissions",
        kind: "table of `\"name\" = \"description\"`",
        default: "`{}`",
        doc: "See [permissions](#permissions).",
    },
    Key {
        path: "routes",
        kind: "array of tables (`[[routes]]`)",
        default: "`[]`",
        doc: "See [routes](#routes).",
    },
    Key {
        path: "subscriptions",
        kind: "array of tables (`[[subscriptions]]`)",
        default: "`[]`",
        doc: "See [subscriptions](#subscriptions).",
    },
    Key {
        path: "settings",
        kind: "table of tables (`[settings.NAME]`)",
        default: "`{}`",
        doc: "See [settings](#settingsname).",
    },
    Key {
        path: "secrets",
        kind: "table of `\"name\" = \"description\"`",
        default: "`{}`",
        doc: "See [secrets](#secrets).",
    },
    Key {
        path: "limits",
        kind: "table",
        default: "`{}`",
        doc: "See [limits](#limits).",
    },
    Key {
        path: "hooks",
        kind: "array of tables (`[[hooks]]`)",
        default: "`[]`",
        doc: "See [hooks](#hooks).",
    },
    Key {
        path: "schedules",
        kind: "array of tables (`[[schedules]]`)",
        default: "`[]`",
        doc: "See [schedules](#schedules).",
    },
    Key {
        path: "admin-pages",
        kind: "array of tables (`[[admin-pages]]`)",
        default: "`[]`",
        doc: "See [admin pages](#admin-pages).",
    },
    Key {
        path: "provides",
        kind: "table of `\"name\" = \"version\"`",
        default: "`{}`",
        doc: "See [provides](#provides).",
    },
    Key {
        path: "requires",
        kind: "table of `\"name\" = \"requirement\"`",
        default: "`{}`",
        doc: "See [requires](#requires).",
    },
    // capabilities
    Key {
        path: "capabilities.kv",
        kind: "boolean or `{}`",
        default: "false",
        doc: "`ucms:host/kv`: a private key-value store (values up to 1 MiB by default).",
    },
    Key {
        path: "capabilities.log",
        kind: "boolean or `{}`",
        default: "false",
        doc: "`ucms:host/log`: structured log lines, rate-limited per plugin.",
    },
    Key {
        path: "capabilities.config",
        kind: "boolean or `{}`",
        default: "false",
        doc: "`ucms:host/config`: the plugin's settings and secrets.",
    },
    Key {
        path: "capabilities.auth",
        kind: "boolean or `{}`",
        default: "false",
        doc: "`ucms:host/auth`: the calling principal and checks of the plugin's own permissions.",
    },
    Key {
        path: "capabilities.events",
        kind: "boolean or a table",
        default: "false",
        doc: "`ucms:host/events`: publishing to the topics granted below.",
    },
    Key {
        path: "capabilities.http-client",
        kind: "boolean or a table",
        default: "false",
        doc: "`ucms:host/http-client`: outbound HTTP to the hosts granted below.",
    },
    Key {
        path: "capabilities.documents",
        kind: "boolean or a table",
        default: "false",
        doc: "`ucms:host/documents`: JSON documents in the plugin's own collections.",
    },
    Key {
        path: "capabilities.blobs",
        kind: "boolean or a table",
        default: "false",
        doc: "`ucms:host/blobs`: files in the plugin's own blob space; needed by upload routes.",
    },
    Key {
        path: "capabilities.cache",
        kind: "boolean or `{}`",
        default: "false",
        doc: "`ucms:host/cache`: a cache private to the plugin (memory or Redis).",
    },
    Key {
        path: "capabilities.hooks",
        kind: "boolean or `{}`",
        default: "false",
        doc: "`ucms:host/hooks`: running the hook points the plugin owns (named `ID.something`).",
    },
    Key {
        path: "capabilities.documents.max-documents",
        kind: "positive integer",
        default: "the operator's default",
        doc: "Most documents the plugin may keep, within the operator's ceiling.",
    },
    Key {
        path: "capabilities.documents.max-mib",
        kind: "positive integer",
        default: "the operator's default",
        doc: "Most MiB of documents the plugin may keep, within the operator's ceiling.",
    },
    Key {
        path: "capabilities.documents.indexes",
        kind: "array of tables",
        default: "`[]`",
        doc: "Indexes the host creates at install; one existing documents violate refuses the plugin.",
    },
    Key {
        path: "capabilities.documents.search",
        kind: "array of tables",
        default: "`[]`",
        doc: "Full-text search indexes (FTS5 on SQLite, `tsvector` on PostgreSQL).",
    },
    Key {
        path: "capabilities.documents.indexes[].collection",
        kind: "string: a collection name",
        default: "required",
        doc: "The collection indexed.",
    },
    Key {
        path: "capabilities.documents.indexes[].name",
        kind: "string: letters, digits, `_`, `-`",
        default: "required",
        doc: "Unique within the collection.",
    },
    Key {
        path: "capabilities.documents.indexes[].fields",
        kind: "array of paths (`author.name`)",
        default: "required",
        doc: "The fields covered, in order.",
    },
    Key {
        path: "capabilities.documents.indexes[].unique",
        kind: "boolean",
        default: "false",
        doc: "Whether two documents may not share the same values.",
    },
    Key {
        path: "capabilities.documents.search[].collection",
        kind: "string: a collection name",
        default: "required",
        doc: "The collection searched.",
    },
    Key {
        path: "capabilities.documents.search[].fields",
        kind: "array of paths",
        default: "required",
        doc: "The text fields searched.",
    },
    Key {
        path: "capabilities.documents.search[].language",
        kind: "string: `english`, `simple`, ...",
        default: "`simple`",
        doc: "The stemming rules.",
    },
    Key {
        path: "capabilities.blobs.max-mib",
        kind: "positive integer",
        default: "the operator's default",
        doc: "The plugin's blob quota in MiB, within the operator's ceiling.",
    },
    Key {
        path: "capabilities.blobs.max-blob-mib",
        kind: "positive integer",
        default: "the operator's default",
        doc: "The largest single blob in MiB (uploads beyond it get 413).",
    },
    Key {
        path: "capabilities.events.publish",
        kind: "array of topic patterns (`orders.placed`, `orders.*`)",
        default: "`[]`",
        doc: "Topics the plugin may publish to; anything else is `not-permitted`.",
    },
    Key {
        path: "capabilities.http-client.hosts",
        kind: "array of host patterns (`api.example.com`, `*.example.com`, `127.0.0.1`)",
        default: "`[]`",
        doc: "Hosts the plugin may call; anything else is `denied`.",
    },
    Key {
        path: "capabilities.http-client.site-hosts",
        kind: "boolean",
        default: "false",
        doc: "The site chooses further destinations: the operator lists them in the policy (`[policy.overrides.ID] hosts`) and the plugin may call those too; `hosts` may then be empty. For plugins whose targets their users pick, such as webhooks.",
    },
    // routes
    Key {
        path: "routes[].method",
        kind: "string: `GET`, `POST`, `PUT`, `PATCH` or `DELETE`",
        default: "required",
        doc: "The HTTP method.",
    },
    Key {
        path: "routes[].path",
        kind: "string: `/…` with `{param}` segments, at most 256 characters",
        default: "required",
        doc: "The path below `/api/ID`, for example `/items/{id}`.",
    },
    Key {
        path: "routes[].permission",
        kind: "string: a permission declared under `[permissions]`",
        default: "one of this and `public` is required",
        doc: "The caller needs `ID.permission` (401 without credentials, 403 without the grant).",
    },
    Key {
        path: "routes[].public",
        kind: "boolean",
        default: "one of this and `permission` is required",
        doc: "`true`: anyone may call it (the built-in `public` role's grants apply).",
    },
    Key {
        path: "routes[].upload",
        kind: "boolean",
        default: "false",
        doc: "The body (raw or multipart) is streamed into the plugin's blobs before it runs; needs `blobs`.",
    },
    Key {
        path: "subscriptions[].topic",
        kind: "string: a topic pattern (`orders.*`)",
        default: "required",
        doc: "The topics delivered to the plugin.",
    },
    // settings
    Key {
        path: "settings.<name>.type",
        kind: "string: `string`, `integer`, `number`, `boolean`, `array`, `object`",
        default: "required",
        doc: "The JSON type of the value.",
    },
    Key {
        path: "settings.<name>.description",
        kind: "string",
        default: "`\"\"`",
        doc: "Shown to the operator.",
    },
    Key {
        path: "settings.<name>.default",
        kind: "a value of the type",
        default: "none",
        doc: "The value when the operator sets none.",
    },
    Key {
        path: "settings.<name>.required",
        kind: "boolean",
        default: "false",
        doc: "Whether the plugin refuses to load without a value.",
    },
    // limits
    Key {
        path: "limits.memory-mib",
        kind: "integer, 1–4096",
        default: "64",
        doc: "Linear memory per instance, in MiB. Plugins with a language runtime (TypeScript, Python) may need more.",
    },
    Key {
        path: "limits.timeout-ms",
        kind: "integer, 1–600000",
        default: "5000",
        doc: "Wall-clock deadline per call (504 `plugin_timeout`).",
    },
    Key {
        path: "limits.max-request-body-kib",
        kind: "integer, 1–1048576",
        default: "1024",
        doc: "Largest request body accepted (413).",
    },
    Key {
        path: "limits.max-response-body-kib",
        kind: "integer, 1–1048576",
        default: "4096",
        doc: "Largest response body the plugin may return (500 `plugin_response_too_large`).",
    },
    Key {
        path: "limits.max-concurrency",
        kind: "integer, 1–10000",
        default: "64",
        doc: "Instances of the plugin at once; beyond, callers wait up to 1 s, then 503 `plugin_busy`.",
    },
    Key {
        path: "limits.max-outbound-requests",
        kind: "integer, 0–10000",
        default: "16",
        doc: "Outbound HTTP requests per invocation.",
    },
    Key {
        path: "limits.cpu-ms",
        kind: "integer, 1–600000",
        default: "2000",
        doc: "CPU time per call (the wall-clock deadline is `timeout-ms`).",
    },
    Key {
        path: "limits.max-outbound-kib",
        kind: "integer, 0–4194304",
        default: "8192",
        doc: "Outbound HTTP bytes per invocation, request and response bodies together.",
    },
    Key {
        path: "limits.events-per-minute",
        kind: "integer, 0–1000000",
        default: "6000",
        doc: "Events the plugin may publish per minute.",
    },
    Key {
        path: "limits.log-lines-per-minute",
        kind: "integer, 0–1000000",
        default: "6000",
        doc: "Log lines per minute; lines over it are dropped and counted.",
    },
    // hooks
    Key {
        path: "hooks[].point",
        kind: "string: a dotted name, `OWNER.something`",
        default: "required",
        doc: "The hook point joined; its first segment is the plugin that runs it.",
    },
    Key {
        path: "hooks[].priority",
        kind: "integer, -10000–10000",
        default: "0",
        doc: "Lower runs first; ties go by plugin id.",
    },
    Key {
        path: "hooks[].on-failure",
        kind: "string: `reject` or `skip`",
        default: "`reject`",
        doc: "What a failure (trap, timeout) of this hook does to the operation.",
    },
    Key {
        path: "hooks[].timeout-ms",
        kind: "integer, 1–30000",
        default: "1000",
        doc: "This hook's deadline.",
    },
    Key {
        path: "schedules[].name",
        kind: "string",
        default: "required",
        doc: "Unique within the plugin; passed to the `scheduler` export.",
    },
    Key {
        path: "schedules[].cron",
        kind: "string: 5 fields (minute hour day month weekday)",
        default: "required",
        doc: "When it runs, in UTC: `\"*/15 * * * *\"`.",
    },
    Key {
        path: "admin-pages[].path",
        kind: "string: `/…`",
        default: "required",
        doc: "Where the page appears in the admin UI, below the plugin's section.",
    },
    Key {
        path: "admin-pages[].title",
        kind: "string",
        default: "required",
        doc: "The page's title in the menu.",
    },
    Key {
        path: "admin-pages[].entry",
        kind: "string: a file below `assets/`",
        default: "required",
        doc: "The page's HTML file in the package; `ucms plugin pack` checks it exists.",
    },
    Key {
        path: "admin-pages[].permission",
        kind: "string: a permission declared under `[permissions]`",
        default: "none (any signed-in user)",
        doc: "Who sees the page.",
    },
];

/// The keys of a section: `capabilities` → `capabilities.kv`, ...; `""` → the top-level ones.
pub fn keys_in(section: &str) -> Vec<&'static Key> {
    KEYS.iter().filter(|k| parent(k.path) == section).collect()
}

/// The section a key belongs to: its path without the last segment.
fn parent(path: &str) -> &str {
    path.rfind('.').map(|i| &path[..i]).unwrap_or("")
}

/// `docs/manifest-reference.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Manifest reference (`ucms-plugin.toml`)\n\n\
         <!-- Generated from host/manifest/src/reference.rs by `cargo xtask docs`; a test fails when it is stale. Don't edit by hand. -->\n\n\
         Every key a plugin manifest accepts; any other key is an error naming the allowed ones. \
         The host validates the whole file at once and reports every problem with its key, line and a hint. \
         `<name>` stands for a name you choose; `[]` marks an array of tables.\n",
    );
    for (section, about) in SECTIONS {
        let keys = keys_in(section);
        if keys.is_empty() && !section.is_empty() {
            let _ = write!(out, "\n## `[{section}]`\n\n{about}\n");
            continue;
        }
        let title = match *section {
            "" => "Top level".to_string(),
            s => format!("`[{}]`", s.trim_end_matches("[]")),
        };
        let _ = write!(
            out,
            "\n## {title}\n\n{about}\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
        );
        for key in keys {
            let name = key.path.rsplit('.').next().unwrap_or(key.path);
            let _ = writeln!(
                out,
                "| `{name}` | {} | {} | {} |",
                key.kind, key.default, key.doc
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Deserialize;
    use serde::de::{self, Visitor};

    use super::*;
    use crate::raw;

    /// A deserializer that records the field names a derived `Deserialize` asks for.
    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for FieldNames<'_> {
        type Error = de::value::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("recorded"))
        }

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    fn fields<T: for<'de> Deserialize<'de>>() -> BTreeSet<&'static str> {
        let mut names: &'static [&'static str] = &[];
        let _ = T::deserialize(FieldNames(&mut names));
        assert!(
            !names.is_empty(),
            "{} has named fields",
            std::any::type_name::<T>()
        );
        names.iter().copied().collect()
    }

    fn documented(section: &str) -> BTreeSet<&'static str> {
        keys_in(section)
            .into_iter()
            .map(|k| k.path.rsplit('.').next().unwrap_or(k.path))
            .collect()
    }

    /// Every table the parser reads, against the keys documented for it.
    #[test]
    fn the_reference_lists_exactly_the_keys_the_parser_reads() {
        let tables: Vec<(&str, BTreeSet<&str>)> = vec![
            ("", fields::<raw::RawManifest>()),
            ("capabilities", fields::<raw::RawCapabilities>()),
            ("capabilities.documents", fields::<raw::RawDocuments>()),
            (
                "capabilities.documents.indexes[]",
                fields::<raw::RawIndex>(),
            ),
            (
                "capabilities.documents.search[]",
                fields::<raw::RawSearch>(),
            ),
            ("capabilities.blobs", fields::<raw::RawBlobs>()),
            ("capabilities.events", fields::<raw::RawEvents>()),
            ("capabilities.http-client", fields::<raw::RawHttpClient>()),
            ("routes[]", fields::<raw::RawRoute>()),
            ("subscriptions[]", fields::<raw::RawSubscription>()),
            ("settings.<name>", fields::<raw::RawSetting>()),
            ("hooks[]", fields::<raw::RawHook>()),
            ("schedules[]", fields::<raw::RawSchedule>()),
            ("admin-pages[]", fields::<raw::RawAdminPage>()),
            (
                "limits",
                crate::limits::BOUNDS.iter().map(|(k, _, _)| *k).collect(),
            ),
        ];
        for (section, parsed) in &tables {
            assert_eq!(
                &documented(section),
                parsed,
                "the keys of [{section}] in reference.rs differ from what the parser reads"
            );
        }
        // And nothing is documented in a section the parser has no table for.
        let known: BTreeSet<&str> = tables.iter().map(|(s, _)| *s).collect();
        for key in KEYS {
            assert!(
                known.contains(parent(key.path)),
                "{} is documented in a section nothing parses",
                key.path
            );
            assert!(
                SECTIONS.iter().any(|(s, _)| *s == parent(key.path)),
                "{} is in no section of the page",
                key.path
            );
        }
    }

    /// docs/manifest-reference.md is what [`markdown`] generates. `UCMS_BLESS=1` rewrites it.
    #[test]
    fn the_manifest_reference_page_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/manifest-reference.md");
        let generated = markdown();
        if std::env::var_os("UCMS_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/manifest-reference.md is stale: the manifest keys in host/manifest/src/reference.rs changed\n  hint: run `cargo xtask docs` and commit the result"
        );
    }
}

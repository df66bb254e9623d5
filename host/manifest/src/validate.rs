//! From [`RawManifest`] to [`Manifest`]: every rule checked, every problem collected.

use std::collections::BTreeMap;

use serde_spanned::Spanned;

use crate::capability::{
    BlobsGrant, Capabilities, DeclaredIndex, DeclaredSearch, DocumentsGrant, EventsGrant,
    HttpClientGrant,
};
use crate::limits::BOUNDS;
use crate::raw::{RawManifest, Toggle};
use crate::routes::{RouteTable, check_path};
use crate::{
    Access, HostPattern, LimitsRequest, Manifest, ManifestError, Method, PluginId, Problem, Route,
    SettingKind, SettingSpec, Subscription, TopicPattern,
};

pub(crate) fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = toml::from_str(text).map_err(|e| {
        let problem = serde_problem(e.message().trim()).at(text, e.span().map(|s| s.start));
        ManifestError::single(problem)
    })?;
    let mut v = Validator {
        text,
        problems: Vec::new(),
    };
    let manifest = v.manifest(raw);
    if v.problems.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestError::new(v.problems))
    }
}

/// Rewords serde's messages about missing and unknown keys into the manifest's own voice.
fn serde_problem(message: &str) -> Problem {
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(field) = rest.strip_suffix('`')
    {
        return Problem::new(field, "this key is required but missing").with_hint(format!(
            "add `{field} = ...` (docs/plugin-guide.md lists the manifest's keys)"
        ));
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once("`, expected ")
    {
        let allowed = expected.trim_start_matches("one of ").replace('`', "");
        return Problem::new(field, "this key is not part of the manifest here")
            .with_hint(format!("check the spelling; allowed here: {allowed}"));
    }
    Problem::new("", message.to_string())
}

struct Validator<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem<T>(&mut self, key: impl Into<String>, at: &Spanned<T>, message: impl Into<String>) {
        let p = Problem::new(key, message).at(self.text, Some(at.span().start));
        self.problems.push(p);
    }

    fn problem_hint<T>(
        &mut self,
        key: impl Into<String>,
        at: &Spanned<T>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let p = Problem::new(key, message)
            .with_hint(hint)
            .at(self.text, Some(at.span().start));
        self.problems.push(p);
    }

    fn manifest(&mut self, raw: RawManifest) -> Manifest {
        let id = match PluginId::new(raw.id.get_ref()) {
            Ok(id) => id,
            Err(e) => {
                self.problem("id", &raw.id, e);
                PluginId("invalid".into())
            }
        };
        let version = semver::Version::parse(raw.version.get_ref()).unwrap_or_else(|e| {
            self.problem_hint(
                "version",
                &raw.version,
                format!("'{}' is not a semantic version: {e}", raw.version.get_ref()),
                "write MAJOR.MINOR.PATCH, for example \"1.0.0\"",
            );
            semver::Version::new(0, 0, 0)
        });
        let api = semver::VersionReq::parse(raw.api.get_ref()).unwrap_or_else(|e| {
            self.problem_hint(
                "api",
                &raw.api,
                format!("'{}' is not a version requirement: {e}", raw.api.get_ref()),
                "name the ucms:host API versions the plugin works with, for example \"^0.1\"",
            );
            semver::VersionReq::STAR
        });
        let publisher = self.publisher(&raw.publisher);
        let description = raw.description.get_ref().trim().to_string();
        if description.is_empty() || description.len() > 500 {
            self.problem(
                "description",
                &raw.description,
                "write a description of 1 to 500 characters",
            );
        }
        let homepage = raw.homepage.as_ref().map(|h| {
            let url = h.get_ref();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                self.problem("homepage", h, format!("'{url}' is not an http(s) URL"));
            }
            url.clone()
        });
        let categories = raw
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if !is_name(c.get_ref()) {
                    self.problem(
                        format!("categories[{i}]"),
                        c,
                        format!("'{}' is not a category name: use lower-case letters, digits and dashes", c.get_ref()),
                    );
                }
                c.get_ref().clone()
            })
            .collect();
        let dependencies = self.dependencies(&raw.dependencies, &id);
        let capabilities = self.capabilities(raw.capabilities);
        let permissions = self.permissions(&raw.permissions);
        let routes = self.routes(&raw.routes, &permissions, capabilities.blobs.is_some());
        let subscriptions = raw
            .subscriptions
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let topic = &s.get_ref().topic;
                match TopicPattern::new(topic.get_ref()) {
                    Ok(topic) => Some(Subscription { topic }),
                    Err(e) => {
                        self.problem(format!("subscriptions[{i}].topic"), topic, e);
                        None
                    }
                }
            })
            .collect();
        let settings = self.settings(&raw.settings);
        let secrets = raw
            .secrets
            .iter()
            .map(|(name, description)| {
                if !is_name(name) {
                    self.problem(
                        format!("secrets.{name}"),
                        description,
                        "secret names use lower-case letters, digits, '-' and '_'",
                    );
                }
                (name.clone(), description.get_ref().clone())
            })
            .collect();
        let limits = self.limits(&raw.limits);
        let hooks = self.hooks(&raw.hooks);
        let schedules = self.schedules(&raw.schedules);
        let admin_pages = self.admin_pages(&raw.admin_pages, &permissions);
        let provides = self.provides(&raw.provides);
        let requires = self.requires(&raw.requires);
        Manifest {
            id,
            version,
            publisher,
            description,
            license: raw.license.map(Spanned::into_inner),
            homepage,
            categories,
            api,
            dependencies,
            capabilities,
            permissions,
            routes,
            subscriptions,
            settings,
            secrets,
            limits,
            hooks,
            schedules,
            admin_pages,
            provides,
            requires,
        }
    }

    fn hooks(&mut self, raw: &[Spanned<crate::raw::RawHook>]) -> Vec<crate::Hook> {
        let mut out: Vec<crate::Hook> = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let h = spanned.get_ref();
            let key = |field: &str| format!("hooks[{i}].{field}");
            let point = h.point.get_ref();
            let valid_point = point.split('.').count() >= 2 && crate::is_valid_topic(point);
            if !valid_point {
                self.problem_hint(
                    key("point"),
                    &h.point,
                    format!("'{point}' is not a hook point"),
                    "hook points are dotted names such as \"content.before-save\"",
                );
                continue;
            }
            if out.iter().any(|o| o.point == *point) {
                self.problem(
                    key("point"),
                    &h.point,
                    format!("the plugin already joins '{point}'"),
                );
                continue;
            }
            let priority = match &h.priority {
                Some(p) if !(-10_000..=10_000).contains(p.get_ref()) => {
                    self.problem(
                        key("priority"),
                        p,
                        "use a priority from -10000 to 10000 (lower runs first)",
                    );
                    continue;
                }
                Some(p) => *p.get_ref() as i32,
                None => 100,
            };
            let on_failure = match h.on_failure.as_ref().map(|s| (s, s.get_ref().as_str())) {
                None | Some((_, "reject")) => crate::OnFailure::Reject,
                Some((_, "skip")) => crate::OnFailure::Skip,
                Some((s, other)) => {
                    self.problem(
                        key("on-failure"),
                        s,
                        format!("'{other}' is not a failure policy; use \"reject\" or \"skip\""),
                    );
                    continue;
                }
            };
            let timeout_ms = match &h.timeout_ms {
                Some(t) if !(1..=30_000).contains(t.get_ref()) => {
                    self.problem(key("timeout-ms"), t, "a hook's deadline is 1 to 30000 ms");
                    continue;
                }
                Some(t) => *t.get_ref() as u32,
                None => 1000,
            };
            out.push(crate::Hook {
                point: point.clone(),
                priority,
                on_failure,
                timeout_ms,
            });
        }
        out
    }

    fn schedules(&mut self, raw: &[Spanned<crate::raw::RawSchedule>]) -> Vec<crate::Schedule> {
        let mut out: Vec<crate::Schedule> = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let s = spanned.get_ref();
            let name = s.name.get_ref();
            if !is_name(name) {
                self.problem(
                    format!("schedules[{i}].name"),
                    &s.name,
                    "schedule names use lower-case letters, digits, '-' and '_'",
                );
                continue;
            }
            if out.iter().any(|o| o.name == *name) {
                self.problem(
                    format!("schedules[{i}].name"),
                    &s.name,
                    format!("there is already a schedule named '{name}'"),
                );
                continue;
            }
            let cron = s.cron.get_ref().trim();
            if let Err(e) = cron.parse::<croner::Cron>() {
                self.problem_hint(
                    format!("schedules[{i}].cron"),
                    &s.cron,
                    format!("'{cron}' is not a cron expression: {e}"),
                    "use 5 fields (minute hour day month weekday), for example \"*/15 * * * *\"",
                );
                continue;
            }
            out.push(crate::Schedule {
                name: name.clone(),
                cron: cron.to_string(),
            });
        }
        out
    }

    fn admin_pages(
        &mut self,
        raw: &[Spanned<crate::raw::RawAdminPage>],
        permissions: &BTreeMap<String, String>,
    ) -> Vec<crate::AdminPage> {
        let mut out = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let p = spanned.get_ref();
            let key = |field: &str| format!("admin-pages[{i}].{field}");
            if let Err(e) = check_path(p.path.get_ref()) {
                self.problem(key("path"), &p.path, e);
                continue;
            }
            let entry = p.entry.get_ref();
            if !entry.starts_with("assets/") || entry.contains("..") || entry.ends_with('/') {
                self.problem_hint(
                    key("entry"),
                    &p.entry,
                    format!("'{entry}' is not a file in the package's assets"),
                    "name a file below assets/, for example \"assets/admin/index.html\"",
                );
                continue;
            }
            if let Some(perm) = &p.permission
                && !permissions.contains_key(perm.get_ref())
            {
                self.problem(
                    key("permission"),
                    perm,
                    format!("'{}' is not declared under [permissions]", perm.get_ref()),
                );
                continue;
            }
            out.push(crate::AdminPage {
                path: p.path.get_ref().clone(),
                title: p.title.get_ref().clone(),
                entry: entry.clone(),
                permission: p.permission.as_ref().map(|p| p.get_ref().clone()),
            });
        }
        out
    }

    fn provides(
        &mut self,
        raw: &BTreeMap<String, Spanned<String>>,
    ) -> BTreeMap<String, semver::Version> {
        let mut out = BTreeMap::new();
        for (name, version) in raw {
            if !valid_interface(name) {
                self.problem(format!("provides.\"{name}\""), version, INTERFACE_RULE);
                continue;
            }
            match semver::Version::parse(version.get_ref()) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(e) => self.problem(
                    format!("provides.\"{name}\""),
                    version,
                    format!("'{}' is not a version: {e}", version.get_ref()),
                ),
            }
        }
        out
    }

    fn requires(
        &mut self,
        raw: &BTreeMap<String, Spanned<String>>,
    ) -> BTreeMap<String, semver::VersionReq> {
        let mut out = BTreeMap::new();
        for (name, req) in raw {
            if !valid_interface(name) {
                self.problem(format!("requires.\"{name}\""), req, INTERFACE_RULE);
                continue;
            }
            match semver::VersionReq::parse(req.get_ref()) {
                Ok(r) => {
                    out.insert(name.clone(), r);
                }
                Err(e) => self.problem(
                    format!("requires.\"{name}\""),
                    req,
                    format!("'{}' is not a version requirement: {e}", req.get_ref()),
                ),
            }
        }
        out
    }

    fn publisher(&mut self, raw: &Spanned<String>) -> String {
        let p = raw.get_ref();
        if !is_name(p) || p.len() > 64 {
            self.problem(
                "publisher",
                raw,
                format!("'{p}' is not a publisher name: use up to 64 lower-case letters, digits, '-' and '_'"),
            );
        }
        p.clone()
    }

    fn dependencies(
        &mut self,
        raw: &BTreeMap<String, Spanned<String>>,
        own: &PluginId,
    ) -> BTreeMap<PluginId, semver::VersionReq> {
        let mut out = BTreeMap::new();
        for (name, req) in raw {
            let key = format!("dependencies.{name}");
            let id = match PluginId::new(name) {
                Ok(id) => id,
                Err(e) => {
                    self.problem(&key, req, e);
                    continue;
                }
            };
            if &id == own {
                self.problem(&key, req, "a plugin can't depend on itself");
                continue;
            }
            match semver::VersionReq::parse(req.get_ref()) {
                Ok(r) => {
                    out.insert(id, r);
                }
                Err(e) => self.problem(
                    &key,
                    req,
                    format!("'{}' is not a version requirement: {e}", req.get_ref()),
                ),
            }
        }
        out
    }

    fn capabilities(&mut self, raw: crate::raw::RawCapabilities) -> Capabilities {
        fn on<T>(t: &Option<Spanned<Toggle<T>>>) -> bool {
            matches!(t.as_ref().map(Spanned::get_ref), Some(Toggle::On(_)))
        }
        let mut caps = Capabilities {
            kv: on(&raw.kv),
            log: on(&raw.log),
            config: on(&raw.config),
            auth: on(&raw.auth),
            events: None,
            http_client: None,
            documents: None,
            blobs: None,
            cache: on(&raw.cache),
            hooks: on(&raw.hooks),
        };
        if let Some(events) = &raw.events
            && let Toggle::On(scopes) = events.get_ref()
        {
            if scopes.publish.is_empty() {
                self.problem_hint(
                    "capabilities.events",
                    events,
                    "the events capability grants no topic to publish to",
                    "list them: events = { publish = [\"my-plugin.*\"] }",
                );
            }
            let mut publish = Vec::new();
            for (i, t) in scopes.publish.iter().enumerate() {
                match TopicPattern::new(t.get_ref()) {
                    Ok(p) => publish.push(p),
                    Err(e) => self.problem(format!("capabilities.events.publish[{i}]"), t, e),
                }
            }
            caps.events = Some(EventsGrant { publish });
        }
        if let Some(http) = &raw.http_client
            && let Toggle::On(scopes) = http.get_ref()
        {
            if scopes.hosts.is_empty() && !scopes.site_hosts {
                self.problem_hint(
                    "capabilities.http-client",
                    http,
                    "the http-client capability grants no destination",
                    "list them: http-client = { hosts = [\"api.example.com\"] }, or, when the \
                     site decides where the plugin may call (webhooks), site-hosts = true",
                );
            }
            let mut hosts = Vec::new();
            for (i, h) in scopes.hosts.iter().enumerate() {
                match HostPattern::new(h.get_ref()) {
                    Ok(p) => hosts.push(p),
                    Err(e) => self.problem(format!("capabilities.http-client.hosts[{i}]"), h, e),
                }
            }
            caps.http_client = Some(HttpClientGrant {
                hosts,
                site_hosts: scopes.site_hosts,
            });
        }
        if let Some(docs) = &raw.documents
            && let Toggle::On(scopes) = docs.get_ref()
        {
            caps.documents = Some(self.documents(scopes));
        }
        if let Some(blobs) = &raw.blobs
            && let Toggle::On(scopes) = blobs.get_ref()
        {
            caps.blobs = Some(BlobsGrant {
                max_mib: self.positive("capabilities.blobs.max-mib", &scopes.max_mib),
                max_blob_mib: self
                    .positive("capabilities.blobs.max-blob-mib", &scopes.max_blob_mib),
            });
        }
        caps
    }

    /// A quota the manifest asks for: a positive whole number.
    fn positive(&mut self, key: &str, value: &Option<Spanned<i64>>) -> Option<u64> {
        let value = value.as_ref()?;
        match u64::try_from(*value.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                self.problem(
                    key,
                    value,
                    format!("{} must be a positive number", value.get_ref()),
                );
                None
            }
        }
    }

    fn documents(&mut self, raw: &crate::raw::RawDocuments) -> DocumentsGrant {
        let mut grant = DocumentsGrant {
            max_documents: self
                .positive("capabilities.documents.max-documents", &raw.max_documents),
            max_mib: self.positive("capabilities.documents.max-mib", &raw.max_mib),
            ..DocumentsGrant::default()
        };
        let mut names = std::collections::BTreeSet::new();
        for (i, spanned) in raw.indexes.iter().enumerate() {
            let index = spanned.get_ref();
            let key = |field: &str| format!("capabilities.documents.indexes[{i}].{field}");
            self.check_name(key("collection"), &index.collection, "collection");
            self.check_name(key("name"), &index.name, "index");
            if !names.insert((
                index.collection.get_ref().clone(),
                index.name.get_ref().clone(),
            )) {
                self.problem(
                    key("name"),
                    &index.name,
                    format!(
                        "collection '{}' already has an index named '{}'",
                        index.collection.get_ref(),
                        index.name.get_ref()
                    ),
                );
            }
            let fields = self.fields(&key("fields"), spanned, &index.fields);
            grant.indexes.push(DeclaredIndex {
                collection: index.collection.get_ref().clone(),
                name: index.name.get_ref().clone(),
                fields,
                unique: index.unique,
            });
        }
        let mut searched = std::collections::BTreeSet::new();
        for (i, spanned) in raw.search.iter().enumerate() {
            let search = spanned.get_ref();
            let key = |field: &str| format!("capabilities.documents.search[{i}].{field}");
            self.check_name(key("collection"), &search.collection, "collection");
            if !searched.insert(search.collection.get_ref().clone()) {
                self.problem_hint(
                    key("collection"),
                    &search.collection,
                    format!("full-text search for '{}' is declared twice", search.collection.get_ref()),
                    "declare one [[capabilities.documents.search]] per collection, listing every field",
                );
            }
            let fields = self.fields(&key("fields"), spanned, &search.fields);
            let language = match &search.language {
                Some(l)
                    if l.get_ref().is_empty()
                        || !l
                            .get_ref()
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_') =>
                {
                    self.problem_hint(
                        key("language"),
                        l,
                        format!("'{}' is not a language name", l.get_ref()),
                        "use a lower-case name such as \"english\", \"german\" or \"simple\"",
                    );
                    String::new()
                }
                Some(l) => l.get_ref().clone(),
                None => "english".to_string(),
            };
            grant.search.push(DeclaredSearch {
                collection: search.collection.get_ref().clone(),
                fields,
                language,
            });
        }
        grant
    }

    /// A collection or index name: lower-case letters, digits, `_` and `-`, 1 to 64 characters.
    fn check_name(&mut self, key: String, name: &Spanned<String>, what: &str) {
        let n = name.get_ref();
        let valid = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            self.problem_hint(
                key,
                name,
                format!("'{n}' is not a valid {what} name"),
                "use 1 to 64 lower-case letters, digits, '_' or '-'",
            );
        }
    }

    /// Document paths: dot-separated field names; the documents store checks them fully.
    fn fields<T>(&mut self, key: &str, at: &Spanned<T>, fields: &[Spanned<String>]) -> Vec<String> {
        if fields.is_empty() {
            self.problem(key, at, "list at least one field");
        }
        let mut out = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let path = f.get_ref();
            let valid = !path.is_empty()
                && path.split('.').all(|seg| {
                    !seg.is_empty()
                        && seg
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                });
            if valid {
                out.push(path.clone());
            } else {
                self.problem_hint(
                    format!("{key}[{i}]"),
                    f,
                    format!("'{path}' is not a document path"),
                    "name fields with dots between levels, for example \"author.name\"",
                );
            }
        }
        out
    }

    fn permissions(&mut self, raw: &BTreeMap<String, Spanned<String>>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, description) in raw {
            let valid = name.len() <= 64
                && name.split('.').all(|seg| {
                    !seg.is_empty()
                        && seg.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                        })
                });
            if !valid {
                self.problem_hint(
                    format!("permissions.\"{name}\""),
                    description,
                    format!("'{name}' is not a permission name"),
                    "use dot-separated lower-case words, for example \"entries.publish\"",
                );
            }
            out.insert(name.clone(), description.get_ref().clone());
        }
        out
    }

    fn routes(
        &mut self,
        raw: &[Spanned<crate::raw::RawRoute>],
        permissions: &BTreeMap<String, String>,
        blobs_granted: bool,
    ) -> Vec<Route> {
        let mut table = RouteTable::default();
        let mut out = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let r = spanned.get_ref();
            let key = |field: &str| format!("routes[{i}].{field}");
            let Some(method) = Method::parse(r.method.get_ref()) else {
                self.problem(
                    key("method"),
                    &r.method,
                    format!(
                        "'{}' is not a supported method; use GET, POST, PUT, PATCH or DELETE",
                        r.method.get_ref()
                    ),
                );
                continue;
            };
            let path = r.path.get_ref();
            // The index is the route's position in the validated list, as in the host's table.
            if let Err(e) = table.insert(method, path, out.len()) {
                self.problem(key("path"), &r.path, e);
                continue;
            }
            let public = r.public.as_ref().map(|b| *b.get_ref());
            let access = match (&r.permission, public) {
                (Some(p), None | Some(false)) => {
                    if !permissions.contains_key(p.get_ref()) {
                        self.problem_hint(
                            key("permission"),
                            p,
                            format!("'{}' is not declared under [permissions]", p.get_ref()),
                            format!(
                                "add it: [permissions] \"{}\" = \"what it allows\"",
                                p.get_ref()
                            ),
                        );
                    }
                    Access::Permission(p.get_ref().clone())
                }
                (None, Some(true)) => Access::Public,
                (Some(p), Some(true)) => {
                    self.problem(
                        key("public"),
                        p,
                        "a route is either public or needs a permission, not both",
                    );
                    continue;
                }
                (None, None | Some(false)) => {
                    self.problem_hint(
                        format!("routes[{i}]"),
                        spanned,
                        format!("{method} {path} does not say who may call it"),
                        "set `permission = \"...\"` (one of [permissions]) or `public = true`",
                    );
                    continue;
                }
            };
            let upload = r.upload.as_ref().is_some_and(|u| *u.get_ref());
            if upload {
                if !matches!(method, Method::Post | Method::Put) {
                    self.problem(
                        key("upload"),
                        r.upload.as_ref().expect("upload is set"),
                        format!("{method} {path} can't take an upload: use POST or PUT"),
                    );
                }
                if !blobs_granted {
                    self.problem_hint(
                        key("upload"),
                        r.upload.as_ref().expect("upload is set"),
                        "an upload route stores the body in the plugin's blobs, but the blobs capability is not granted",
                        "add [capabilities] blobs = true",
                    );
                }
            }
            out.push(Route {
                method,
                path: path.clone(),
                access,
                upload,
            });
        }
        out
    }

    fn settings(
        &mut self,
        raw: &BTreeMap<String, Spanned<crate::raw::RawSetting>>,
    ) -> BTreeMap<String, SettingSpec> {
        let mut out = BTreeMap::new();
        for (name, spanned) in raw {
            let s = spanned.get_ref();
            let key = format!("settings.{name}");
            if !is_name(name) {
                self.problem(
                    &key,
                    spanned,
                    "setting names use lower-case letters, digits, '-' and '_'",
                );
            }
            let Some(kind) = SettingKind::parse(s.kind.get_ref()) else {
                let allowed: Vec<_> = SettingKind::ALL.iter().map(|k| k.name()).collect();
                self.problem(
                    format!("{key}.type"),
                    &s.kind,
                    format!(
                        "'{}' is not a setting type; use one of {}",
                        s.kind.get_ref(),
                        allowed.join(", ")
                    ),
                );
                continue;
            };
            if let Some(default) = &s.default
                && !kind.accepts(default.get_ref())
            {
                self.problem(
                    format!("{key}.default"),
                    default,
                    format!("the default is not a {kind}"),
                );
            }
            out.insert(
                name.clone(),
                SettingSpec {
                    kind,
                    description: s.description.clone(),
                    default: s.default.as_ref().map(|d| d.get_ref().clone()),
                    required: s.required,
                },
            );
        }
        out
    }

    fn limits(&mut self, raw: &BTreeMap<String, Spanned<i64>>) -> LimitsRequest {
        let mut limits = LimitsRequest::default();
        for (name, value) in raw {
            let key = format!("limits.{name}");
            let Some((_, min, max)) = BOUNDS.iter().find(|(k, _, _)| k == name) else {
                let known: Vec<_> = BOUNDS.iter().map(|(k, _, _)| *k).collect();
                self.problem(
                    &key,
                    value,
                    format!("unknown limit; the limits are {}", known.join(", ")),
                );
                continue;
            };
            let v = *value.get_ref();
            if v < i64::from(*min) || v > i64::from(*max) {
                self.problem(
                    &key,
                    value,
                    format!("{v} is out of range; use {min} to {max}"),
                );
                continue;
            }
            let v = Some(v as u32);
            match name.as_str() {
                "memory-mib" => limits.memory_mib = v,
                "timeout-ms" => limits.timeout_ms = v,
                "max-request-body-kib" => limits.max_request_body_kib = v,
                "max-response-body-kib" => limits.max_response_body_kib = v,
                "max-concurrency" => limits.max_concurrency = v,
                "max-outbound-requests" => limits.max_outbound_requests = v,
                "cpu-ms" => limits.cpu_ms = v,
                "max-outbound-kib" => limits.max_outbound_kib = v,
                "events-per-minute" => limits.events_per_minute = v,
                "log-lines-per-minute" => limits.log_lines_per_minute = v,
                _ => unreachable!("BOUNDS and this match list the same keys"),
            }
        }
        limits
    }
}

const INTERFACE_RULE: &str =
    "interface names are a namespace and a name, lower-case, such as \"content/entries\"";

fn valid_interface(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(ns, iface)| is_name(ns) && is_name(iface))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

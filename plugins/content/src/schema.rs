//! Content types: their definition (what the API takes and the `types` collection stores), the
//! checks a definition must pass, and the validation of entry values against it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pattern::Pattern;
use crate::time;

/// Path segments below `/api/content` that can't be type names.
pub const RESERVED_TYPE_NAMES: [&str; 7] = [
    "types",
    "taxonomies",
    "schema",
    "openapi.json",
    "sitemap.xml",
    "search",
    "graphql",
];

/// Entry attributes that can't be field names (they appear beside `fields` in an entry).
const RESERVED_FIELD_NAMES: [&str; 8] = [
    "id",
    "type",
    "status",
    "locale",
    "created-at",
    "updated-at",
    "published-at",
    "created-by",
];

/// Indexes the documents store allows per collection, and how many every type uses itself.
const MAX_INDEXES: usize = 16;
pub const BASE_INDEXES: usize = 4;
const MAX_SEARCH_FIELDS: usize = 8;
const MAX_FIELDS: usize = 100;
const DEFAULT_SHORT_MAX: u64 = 255;
/// Lengths search engines show (and what mature CMSs' SEO fields allow).
pub const META_TITLE_MAX: usize = 60;
pub const META_DESCRIPTION_MAX: usize = 160;
pub const SEO_KEYS: [&str; 4] = ["meta-title", "meta-description", "canonical-url", "noindex"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContentType {
    pub name: String,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default = "yes")]
    pub draft_and_publish: bool,
    #[serde(default = "default_locales")]
    pub locales: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_locale: Option<String>,
    /// Text fields covered by full-text search; `None`: every text field (at most 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Vec<String>>,
    #[serde(default = "english")]
    pub search_language: String,
    /// Extra indexes for filters and sorts: each one to two field names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Vec<String>>,
    /// The public path of an entry on the site (`/blog/{slug}`): placeholders are `{id}`,
    /// `{locale}` and the type's slug fields. Types with one are listed in the sitemap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_pattern: Option<String>,
    /// Review stages an entry moves through before it may be published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Workflow>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Workflow {
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    /// The permission moving an entry into this stage needs: `update` (default), `review` or
    /// `publish` (each checked with its `stage-NAME` and `type-NAME` conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

/// Permissions a stage may ask for.
pub const STAGE_PERMISSIONS: [&str; 3] = ["update", "review", "publish"];
const MAX_STAGES: usize = 10;

impl Workflow {
    pub fn first(&self) -> &str {
        self.stages.first().map_or("", |s| s.name.as_str())
    }
    pub fn last(&self) -> &str {
        self.stages.last().map_or("", |s| s.name.as_str())
    }
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
    pub fn names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name.as_str()).collect()
    }
}

fn yes() -> bool {
    true
}
fn english() -> String {
    "english".into()
}
fn default_locales() -> Vec<String> {
    vec!["en".into()]
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    #[default]
    Collection,
    Single,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    ShortText,
    LongText,
    RichText,
    Integer,
    Decimal,
    Boolean,
    Date,
    Datetime,
    Enumeration,
    Email,
    Url,
    Slug,
    Json,
    Media,
    Relation,
    Component,
    DynamicZone,
    /// `{"meta-title", "meta-description", "canonical-url", "noindex"}`, at most one per type.
    Seo,
    /// A term slug of the field's `vocabulary` (an array of them when `multiple`).
    Taxonomy,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Cardinality {
    OneToOne,
    OneToMany,
    ManyToMany,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnDelete {
    #[default]
    Restrict,
    Cascade,
    SetNull,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub localized: bool,
    /// Left out of reads by callers without `content.update`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// rich-text: `markdown` (default) or `blocks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// slug: the field it is derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardinality: Option<Cardinality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnDelete>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<Field>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub repeatable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BTreeMap<String, Vec<Field>>>,
    /// taxonomy: the vocabulary its terms come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<String>,
    /// taxonomy: several terms (an array) instead of one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiple: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Problems by field path; what a 422 lists.
pub type FieldErrors = BTreeMap<String, String>;

impl ContentType {
    pub fn default_locale(&self) -> &str {
        self.default_locale
            .as_deref()
            .or(self.locales.first().map(String::as_str))
            .unwrap_or("en")
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The first slug field: what `GET /{type}/{slug}` looks up.
    pub fn slug_field(&self) -> Option<&Field> {
        self.fields.iter().find(|f| f.kind == FieldType::Slug)
    }

    /// The SEO field, if the type has one.
    pub fn seo_field(&self) -> Option<&Field> {
        self.fields.iter().find(|f| f.kind == FieldType::Seo)
    }

    /// The entry's public path under the type's `url-pattern` (values from `fields`; an empty
    /// slug falls back to the entry id), percent-encoded.
    pub fn path_of(
        &self,
        entry: &str,
        locale: &str,
        fields: &Map<String, Value>,
    ) -> Option<String> {
        let pattern = self.url_pattern.as_deref()?;
        let mut out = String::new();
        let mut rest = pattern;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}')? + start;
            let name = &rest[start + 1..end];
            let value = match name {
                "id" => entry.to_string(),
                "locale" => locale.to_string(),
                field => fields
                    .get(field)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or(entry)
                    .to_string(),
            };
            out.push_str(&percent_encode(&value));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// Whether the URL pattern names `{locale}` (each locale has its own URL).
    pub fn url_has_locale(&self) -> bool {
        self.url_pattern
            .as_deref()
            .is_some_and(|p| p.contains("{locale}"))
    }

    /// Fields full-text search covers.
    pub fn search_fields(&self) -> Vec<String> {
        match &self.search {
            Some(fields) => fields.clone(),
            None => self
                .fields
                .iter()
                .filter(|f| f.kind.is_text())
                .map(|f| f.name.clone())
                .take(MAX_SEARCH_FIELDS)
                .collect(),
        }
    }

    pub fn relations(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.kind == FieldType::Relation)
    }

    /// The document indexes of `entries.{name}` beyond the base ones: (name, paths, unique).
    pub fn indexes(&self) -> Vec<(String, Vec<String>, bool)> {
        let mut out = Vec::new();
        for f in &self.fields {
            if f.unique || f.kind == FieldType::Slug {
                for (view, tag) in [("fields", "d"), ("published", "p")] {
                    out.push((
                        format!("f-{}-{tag}", f.name),
                        vec!["locale".into(), format!("{view}.{}", f.name)],
                        f.unique,
                    ));
                }
            } else if f.kind == FieldType::Relation {
                out.push((
                    format!("r-{}", f.name),
                    vec![format!("fields.{}", f.name)],
                    false,
                ));
            }
        }
        for (i, paths) in self.indexes.iter().enumerate() {
            // Published reads also ask for `live`: with it in the index, the total of a
            // filtered page counts index entries without reading a document.
            for (view, tag, prefix) in [
                ("fields", "d", &["locale"][..]),
                ("published", "p", &["locale", "live"][..]),
            ] {
                let mut all: Vec<String> = prefix.iter().map(|p| p.to_string()).collect();
                all.extend(paths.iter().map(|p| format!("{view}.{p}")));
                out.push((format!("x{i}-{tag}"), all, false));
            }
        }
        out
    }

    /// Every problem with the definition, by key; `types` are the other types (for relations).
    pub fn check(&self, types: &BTreeMap<String, ContentType>) -> FieldErrors {
        let mut errors = FieldErrors::new();
        if !valid_type_name(&self.name) {
            errors.insert(
                "name".into(),
                "must be 1-40 lower-case letters, digits and dashes, starting with a letter".into(),
            );
        } else if RESERVED_TYPE_NAMES.contains(&self.name.as_str()) {
            errors.insert(
                "name".into(),
                format!(
                    "'{}' is reserved (it is a path of the API): choose another name",
                    self.name
                ),
            );
        }
        if self.locales.is_empty() {
            errors.insert("locales".into(), "needs at least one locale".into());
        }
        let mut seen = BTreeSet::new();
        for l in &self.locales {
            if !valid_locale(l) {
                errors.insert(
                    "locales".into(),
                    format!("'{l}' is not a locale code like 'en' or 'pt-BR'"),
                );
            }
            if !seen.insert(l) {
                errors.insert("locales".into(), format!("'{l}' is listed twice"));
            }
        }
        if let Some(d) = &self.default_locale
            && !self.locales.contains(d)
        {
            errors.insert(
                "default-locale".into(),
                format!("'{d}' is not one of the type's locales"),
            );
        }
        if self.fields.len() > MAX_FIELDS {
            errors.insert(
                "fields".into(),
                format!("a type has at most {MAX_FIELDS} fields"),
            );
        }
        check_fields(&self.fields, "", self, types, true, &mut errors);
        let search = self.search_fields();
        if search.len() > MAX_SEARCH_FIELDS {
            errors.insert(
                "search".into(),
                format!("full-text search covers at most {MAX_SEARCH_FIELDS} fields"),
            );
        }
        for s in &search {
            match self.field(s) {
                Some(f) if f.kind.is_text() || f.kind == FieldType::Slug => {}
                _ => {
                    errors.insert(
                        "search".into(),
                        format!("'{s}' is not a text field of the type"),
                    );
                }
            }
        }
        for (i, paths) in self.indexes.iter().enumerate() {
            if paths.is_empty() || paths.len() > 2 {
                errors.insert(
                    format!("indexes.{i}"),
                    "an index covers one or two fields".into(),
                );
            }
            for p in paths {
                if !self.field(p).is_some_and(|f| f.kind.is_scalar()) {
                    errors.insert(
                        format!("indexes.{i}"),
                        format!("'{p}' is not a scalar field of the type"),
                    );
                }
            }
        }
        if let Some(p) = &self.url_pattern
            && let Err(m) = self.check_url_pattern(p)
        {
            errors.insert("url-pattern".into(), m);
        }
        if let Some(w) = &self.workflow {
            self.check_workflow(w, &mut errors);
        }
        if self
            .fields
            .iter()
            .filter(|f| f.kind == FieldType::Seo)
            .count()
            > 1
        {
            errors.insert("fields".into(), "a type has at most one seo field".into());
        }
        let indexes = BASE_INDEXES + self.indexes().len();
        if indexes > MAX_INDEXES {
            errors.insert(
                "fields".into(),
                format!(
                    "this type needs {indexes} indexes (2 per unique or slug field, 1 per relation, 2 per declared index, {BASE_INDEXES} of its own) but a collection has at most {MAX_INDEXES}: make fewer fields unique or declare fewer indexes"
                ),
            );
        }
        errors
    }
}

impl ContentType {
    fn check_workflow(&self, w: &Workflow, errors: &mut FieldErrors) {
        if !(2..=MAX_STAGES).contains(&w.stages.len()) {
            errors.insert(
                "workflow.stages".into(),
                format!("a workflow has 2 to {MAX_STAGES} stages"),
            );
        }
        if !self.draft_and_publish {
            errors.insert(
                "workflow".into(),
                "review stages need draft-and-publish: true (entries are reviewed before they are published)".into(),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, st) in w.stages.iter().enumerate() {
            let key = format!("workflow.stages.{i}");
            if !valid_type_name(&st.name) {
                errors.insert(
                    key,
                    "a stage name is 1-40 lower-case letters, digits and dashes, starting with a letter".into(),
                );
            } else if !seen.insert(st.name.as_str()) {
                errors.insert(key, format!("the stage '{}' is listed twice", st.name));
            } else if let Some(p) = &st.permission
                && !STAGE_PERMISSIONS.contains(&p.as_str())
            {
                errors.insert(
                    format!("{key}.permission"),
                    format!("'{p}' is not one of: {}", STAGE_PERMISSIONS.join(", ")),
                );
            }
        }
    }

    fn check_url_pattern(&self, p: &str) -> Result<(), String> {
        if !p.starts_with('/') || p.len() > 200 {
            return Err(
                "must be a path of at most 200 characters starting with '/', like /blog/{slug}"
                    .into(),
            );
        }
        if p.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '<' | '>' | '"')
        }) {
            return Err("can't hold spaces, '?', '#', '<', '>' or quotes".into());
        }
        let mut rest = p;
        let mut placeholders = 0;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                return Err("has a '{' without its '}'".into());
            };
            let name = &rest[start + 1..start + len];
            let ok = name == "id"
                || name == "locale"
                || self.field(name).is_some_and(|f| f.kind == FieldType::Slug);
            if !ok {
                return Err(format!(
                    "'{{{name}}}' is not a placeholder: use {{id}}, {{locale}} or a slug field of the type"
                ));
            }
            placeholders += 1;
            rest = &rest[start + len + 1..];
        }
        if rest.contains('}') {
            return Err("has a '}' without its '{'".into());
        }
        if placeholders == 0 && self.kind == Kind::Collection {
            return Err(
                "a collection's entries need distinct URLs: put {id} or a slug field in it, like /blog/{slug}"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A type, vocabulary or stage name: 1-40 of `a-z`, `0-9`, `-`, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    valid_type_name(name)
}

fn valid_type_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_field_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_locale(l: &str) -> bool {
    let mut parts = l.split('-');
    let first = parts.next().unwrap_or_default();
    (2..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn check_fields(
    fields: &[Field],
    prefix: &str,
    ty: &ContentType,
    types: &BTreeMap<String, ContentType>,
    top: bool,
    errors: &mut FieldErrors,
) {
    let mut names = BTreeSet::new();
    for (i, f) in fields.iter().enumerate() {
        let key = if f.name.is_empty() {
            format!("{prefix}fields.{i}")
        } else {
            format!("{prefix}{}", f.name)
        };
        let mut bad = |m: String| {
            errors.entry(key.clone()).or_insert(m);
        };
        if !valid_field_name(&f.name) {
            bad("a field name is 1-64 lower-case letters, digits, '-' and '_', starting with a letter".into());
        }
        if top && RESERVED_FIELD_NAMES.contains(&f.name.as_str()) {
            bad(format!(
                "'{}' is reserved for the entry's own attributes: choose another name",
                f.name
            ));
        }
        if !names.insert(f.name.clone()) {
            bad(format!("the field '{}' is defined twice", f.name));
        }
        let scalar_only = |v: bool| v;
        if f.unique && !scalar_only(f.kind.is_scalar()) {
            bad("only scalar fields (text, numbers, dates, slugs, emails, urls, enumerations) can be unique".into());
        }
        if f.unique && !top {
            bad("fields inside components can't be unique".into());
        }
        if f.localized && !top {
            bad("fields inside components are localized with the component".into());
        }
        if let Some(p) = &f.pattern
            && let Err(e) = Pattern::parse(p)
        {
            bad(format!("pattern: {e}"));
        }
        if let (Some(min), Some(max)) = (f.min_length, f.max_length)
            && min > max
        {
            bad("min-length is above max-length".into());
        }
        let numeric = |v: &Option<Value>| v.as_ref().is_none_or(Value::is_number);
        let datey = |v: &Option<Value>, date: bool| {
            v.as_ref().is_none_or(|v| {
                v.as_str().is_some_and(|s| {
                    if date {
                        time::parse_date(s).is_some()
                    } else {
                        time::parse_datetime(s).is_some()
                    }
                })
            })
        };
        match f.kind {
            FieldType::Integer | FieldType::Decimal => {
                if !numeric(&f.min) || !numeric(&f.max) {
                    bad("min and max must be numbers".into());
                }
            }
            FieldType::Date | FieldType::Datetime => {
                let date = f.kind == FieldType::Date;
                if !datey(&f.min, date) || !datey(&f.max, date) {
                    bad(if date {
                        "min and max must be dates (YYYY-MM-DD)".into()
                    } else {
                        "min and max must be RFC 3339 times".into()
                    });
                }
            }
            FieldType::Component | FieldType::DynamicZone => {
                if !numeric(&f.min) || !numeric(&f.max) {
                    bad("min and max (how many items) must be numbers".into());
                }
            }
            _ => {
                if f.min.is_some() || f.max.is_some() {
                    bad(format!(
                        "min and max apply to numbers, dates and repeatable components, not to {}",
                        f.kind.name()
                    ));
                }
            }
        }
        match f.kind {
            FieldType::Enumeration => match &f.values {
                Some(v) if !v.is_empty() => {}
                _ => bad("an enumeration needs 'values', the allowed strings".into()),
            },
            FieldType::RichText => {
                if let Some(format) = &f.format
                    && format != "markdown"
                    && format != "blocks"
                {
                    bad("format is 'markdown' or 'blocks'".into());
                }
            }
            FieldType::Slug => {
                if let Some(from) = &f.from {
                    match fields.iter().find(|g| &g.name == from) {
                        Some(g) if g.kind.is_text() => {}
                        _ => bad(format!(
                            "'from' names '{from}', which is not a text field here"
                        )),
                    }
                }
            }
            FieldType::Relation => {
                if !top {
                    bad("relations can't be inside components".into());
                }
                match &f.target {
                    None => bad("a relation needs a 'target' type".into()),
                    Some(t) if *t != ty.name && !types.contains_key(t) => bad(format!(
                        "the target type '{t}' does not exist: create it first"
                    )),
                    Some(_) => {}
                }
                if f.cardinality.is_none() {
                    bad(
                        "a relation needs a 'cardinality': one-to-one, one-to-many or many-to-many"
                            .into(),
                    );
                }
            }
            FieldType::Taxonomy => {
                if !top {
                    bad("taxonomy fields can't be inside components".into());
                } else if f.vocabulary.is_none() {
                    bad("a taxonomy field needs a 'vocabulary'".into());
                }
            }
            FieldType::Seo if !top => {
                bad("the seo field belongs at the top of a type, not inside components".into());
            }
            FieldType::Component => match &f.fields {
                None => bad("a component needs 'fields'".into()),
                Some(sub) => check_fields(sub, &format!("{key}."), ty, types, false, errors),
            },
            FieldType::DynamicZone => match &f.blocks {
                Some(blocks) if !blocks.is_empty() => {
                    for (name, sub) in blocks {
                        if !valid_field_name(name) {
                            errors.insert(
                                format!("{key}.{name}"),
                                "a block name is like a field name".into(),
                            );
                        }
                        check_fields(sub, &format!("{key}.{name}."), ty, types, false, errors);
                    }
                }
                _ => bad("a dynamic zone needs 'blocks': block name → fields".into()),
            },
            _ => {}
        }
        if let Some(default) = &f.default {
            let mut errs = FieldErrors::new();
            check_value(f, default, &key, &mut errs);
            if let Some(m) = errs.into_values().next() {
                errors
                    .entry(key.clone())
                    .or_insert(format!("the default {m}"));
            }
        }
    }
}

impl FieldType {
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    pub fn is_text(self) -> bool {
        matches!(self, Self::ShortText | Self::LongText | Self::RichText)
    }

    /// Stored as one JSON scalar: filterable with every operator, sortable, indexable.
    pub fn is_scalar(self) -> bool {
        matches!(
            self,
            Self::ShortText
                | Self::LongText
                | Self::Integer
                | Self::Decimal
                | Self::Boolean
                | Self::Date
                | Self::Datetime
                | Self::Enumeration
                | Self::Email
                | Self::Url
                | Self::Slug
        )
    }

    /// Kept lower-cased (for `$containsi`) and reversed (for `$endsWith`) beside the value.
    pub fn has_shadows(self) -> bool {
        matches!(
            self,
            Self::ShortText
                | Self::LongText
                | Self::Email
                | Self::Url
                | Self::Slug
                | Self::Enumeration
        )
    }
}

/// Checks `value` against `field`; problems go to `errors` under `key`.
pub fn check_value(field: &Field, value: &Value, key: &str, errors: &mut FieldErrors) {
    if value.is_null() {
        if field.required {
            errors.insert(key.into(), "is required".into());
        }
        return;
    }
    let mut bad = |m: String| {
        errors.insert(key.into(), m);
    };
    match field.kind {
        FieldType::ShortText
        | FieldType::LongText
        | FieldType::Email
        | FieldType::Url
        | FieldType::Slug => {
            let Some(s) = value.as_str() else {
                return bad("must be a string".into());
            };
            if field.required && s.trim().is_empty() {
                return bad("is required".into());
            }
            let len = s.chars().count() as u64;
            let max = field.max_length.or(match field.kind {
                FieldType::ShortText | FieldType::Slug => Some(DEFAULT_SHORT_MAX),
                _ => None,
            });
            if let Some(min) = field.min_length
                && len < min
            {
                return bad(format!("must be at least {min} characters long"));
            }
            if let Some(max) = max
                && len > max
            {
                return bad(format!("must be at most {max} characters long"));
            }
            match field.kind {
                FieldType::ShortText if s.contains('\n') => {
                    return bad("must be one line (use long-text for more)".into());
                }
                FieldType::Email if !valid_email(s) => {
                    return bad("must be an e-mail address like name@example.com".into());
                }
                FieldType::Url if !valid_url(s) => {
                    return bad("must be an http:// or https:// URL".into());
                }
                FieldType::Slug if !valid_slug(s) => {
                    return bad(
                        "must be a slug: lower-case letters, digits and inner dashes".into(),
                    );
                }
                _ => {}
            }
            if let Some(p) = &field.pattern
                && let Ok(p) = Pattern::parse(p)
                && !p.matches(s)
            {
                bad(format!(
                    "does not match the pattern {}",
                    field.pattern.as_deref().unwrap_or_default()
                ));
            }
        }
        FieldType::RichText => {
            if field.format.as_deref() == Some("blocks") {
                let ok = value.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|b| b.get("type").is_some_and(Value::is_string))
                });
                if !ok {
                    bad("must be an array of blocks, each an object with a 'type'".into());
                }
            } else {
                match value.as_str() {
                    None => bad("must be a Markdown string".into()),
                    Some(s) => {
                        if let Some(max) = field.max_length
                            && s.chars().count() as u64 > max
                        {
                            bad(format!("must be at most {max} characters long"));
                        }
                    }
                }
            }
        }
        FieldType::Integer | FieldType::Decimal => {
            let Some(n) = value.as_f64() else {
                return bad("must be a number".into());
            };
            if field.kind == FieldType::Integer && !(value.is_i64() || value.is_u64()) {
                return bad("must be a whole number".into());
            }
            if let Some(min) = field.min.as_ref().and_then(Value::as_f64)
                && n < min
            {
                return bad(format!(
                    "must be at least {}",
                    field.min.as_ref().unwrap_or(&Value::Null)
                ));
            }
            if let Some(max) = field.max.as_ref().and_then(Value::as_f64)
                && n > max
            {
                bad(format!(
                    "must be at most {}",
                    field.max.as_ref().unwrap_or(&Value::Null)
                ));
            }
        }
        FieldType::Boolean => {
            if !value.is_boolean() {
                bad("must be true or false".into());
            }
        }
        FieldType::Date | FieldType::Datetime => {
            let date = field.kind == FieldType::Date;
            let parse = |s: &str| {
                if date {
                    time::parse_date(s)
                } else {
                    time::parse_datetime(s)
                }
            };
            let Some(at) = value.as_str().and_then(parse) else {
                return bad(if date {
                    "must be a date: YYYY-MM-DD".into()
                } else {
                    "must be an RFC 3339 time like 2026-01-31T12:00:00Z".into()
                });
            };
            if let Some(min) = field.min.as_ref().and_then(Value::as_str)
                && parse(min).is_some_and(|m| at < m)
            {
                return bad(format!("must be {min} or later"));
            }
            if let Some(max) = field.max.as_ref().and_then(Value::as_str)
                && parse(max).is_some_and(|m| at > m)
            {
                bad(format!("must be {max} or earlier"));
            }
        }
        FieldType::Enumeration => {
            let values = field.values.as_deref().unwrap_or_default();
            if !value
                .as_str()
                .is_some_and(|s| values.iter().any(|v| v == s))
            {
                bad(format!("must be one of: {}", values.join(", ")));
            }
        }
        FieldType::Json => {}
        FieldType::Seo => check_seo(value, key, errors),
        FieldType::Taxonomy => {
            let ok = if field.multiple {
                value.as_array().is_some_and(|a| {
                    a.iter().all(|v| v.as_str().is_some_and(valid_slug))
                        && a.iter()
                            .filter_map(Value::as_str)
                            .collect::<BTreeSet<_>>()
                            .len()
                            == a.len()
                })
            } else {
                value.as_str().is_some_and(valid_slug)
            };
            if !ok {
                bad(if field.multiple {
                    "must be an array of distinct term slugs".into()
                } else {
                    "must be a term slug".into()
                });
            }
        }
        FieldType::Media => {
            let Some(key_str) = value.get("key").and_then(Value::as_str) else {
                return bad("must be an object with the blob's 'key'".into());
            };
            if key_str.is_empty() {
                return bad("'key' can't be empty".into());
            }
            if let Some(allowed) = &field.allowed_types {
                let ct = value
                    .get("content-type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !allowed.iter().any(|a| ct.starts_with(a.as_str())) {
                    bad(format!(
                        "must have a content-type starting with one of: {}",
                        allowed.join(", ")
                    ));
                }
            }
        }
        FieldType::Relation => {
            let one = field.cardinality == Some(Cardinality::OneToOne);
            let ok = if one {
                value.as_str().is_some_and(|s| !s.is_empty())
            } else {
                value
                    .as_array()
                    .is_some_and(|a| a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())))
            };
            if !ok {
                bad(if one {
                    "must be the id of an entry".into()
                } else {
                    "must be an array of entry ids".into()
                });
            }
        }
        FieldType::Component => {
            let sub = field.fields.as_deref().unwrap_or_default();
            if field.repeatable {
                let Some(items) = value.as_array() else {
                    return bad("must be an array of objects".into());
                };
                if let Some(r) = count_range(field, items.len()) {
                    return bad(r);
                }
                for (i, item) in items.iter().enumerate() {
                    check_object(sub, item, &format!("{key}.{i}"), errors);
                }
            } else {
                check_object(sub, value, key, errors);
            }
        }
        FieldType::DynamicZone => {
            let Some(items) = value.as_array() else {
                return bad("must be an array of blocks".into());
            };
            if let Some(r) = count_range(field, items.len()) {
                return bad(r);
            }
            let blocks = field.blocks.clone().unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                let name = item
                    .get("__block")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match blocks.get(name) {
                    None => {
                        errors.insert(
                            format!("{key}.{i}"),
                            format!(
                                "'__block' must be one of: {}",
                                blocks.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        );
                    }
                    Some(sub) => {
                        let mut item = item.clone();
                        if let Some(o) = item.as_object_mut() {
                            o.remove("__block");
                        }
                        check_object(sub, &item, &format!("{key}.{i}"), errors);
                    }
                }
            }
        }
    }
}

/// An SEO value: an object of the [`SEO_KEYS`], each checked (lengths, URL, boolean).
fn check_seo(value: &Value, key: &str, errors: &mut FieldErrors) {
    let Some(obj) = value.as_object() else {
        errors.insert(
            key.into(),
            format!("must be an object with {}", SEO_KEYS.join(", ")),
        );
        return;
    };
    for (k, v) in obj {
        let at = format!("{key}.{k}");
        if v.is_null() {
            continue;
        }
        let problem = match k.as_str() {
            "meta-title" | "meta-description" => {
                let max = if k == "meta-title" {
                    META_TITLE_MAX
                } else {
                    META_DESCRIPTION_MAX
                };
                match v.as_str() {
                    None => Some("must be a string".to_string()),
                    Some(s) if s.trim().is_empty() => {
                        Some("can't be blank (leave it out instead)".into())
                    }
                    Some(s) if s.contains('\n') => Some("must be one line".into()),
                    Some(s) if s.chars().count() > max => Some(format!(
                        "must be at most {max} characters long (search engines cut the rest)"
                    )),
                    Some(_) => None,
                }
            }
            "canonical-url" => (!v.as_str().is_some_and(valid_url))
                .then(|| "must be an absolute http:// or https:// URL".to_string()),
            "noindex" => (!v.is_boolean()).then(|| "must be true or false".to_string()),
            _ => Some(format!("is not an SEO key: use {}", SEO_KEYS.join(", "))),
        };
        if let Some(p) = problem {
            errors.insert(at, p);
        }
    }
}

fn count_range(field: &Field, n: usize) -> Option<String> {
    let n = n as f64;
    if let Some(min) = field.min.as_ref().and_then(Value::as_f64)
        && n < min
    {
        return Some(format!("needs at least {min} items"));
    }
    if let Some(max) = field.max.as_ref().and_then(Value::as_f64)
        && n > max
    {
        return Some(format!("takes at most {max} items"));
    }
    None
}

/// Checks an object of nested `fields` (a component or a block).
fn check_object(fields: &[Field], value: &Value, key: &str, errors: &mut FieldErrors) {
    let Some(obj) = value.as_object() else {
        errors.insert(key.into(), "must be an object".into());
        return;
    };
    for k in obj.keys() {
        if !fields.iter().any(|f| &f.name == k) {
            errors.insert(format!("{key}.{k}"), "is not a field here".into());
        }
    }
    for f in fields {
        check_value(
            f,
            obj.get(&f.name).unwrap_or(&Value::Null),
            &format!("{key}.{}", f.name),
            errors,
        );
    }
}

/// Validates an entry's `fields` (after defaults and slugs were filled in): unknown keys and
/// every field's rules.
pub fn check_entry(ty: &ContentType, fields: &Map<String, Value>) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for k in fields.keys() {
        if ty.field(k).is_none() {
            errors.insert(
                k.clone(),
                format!("is not a field of the type '{}'", ty.name),
            );
        }
    }
    for f in &ty.fields {
        check_value(
            f,
            fields.get(&f.name).unwrap_or(&Value::Null),
            &f.name,
            &mut errors,
        );
    }
    errors
}

/// Fills in defaults for missing fields and derives empty slugs from their `from` field.
pub fn complete(ty: &ContentType, fields: &mut Map<String, Value>) {
    for f in &ty.fields {
        let missing = fields.get(&f.name).is_none_or(Value::is_null);
        if !missing {
            continue;
        }
        if let Some(d) = &f.default {
            fields.insert(f.name.clone(), d.clone());
        } else if f.kind == FieldType::Slug
            && let Some(from) = &f.from
            && let Some(s) = fields.get(from).and_then(Value::as_str)
        {
            let slug = slugify(s);
            if !slug.is_empty() {
                fields.insert(f.name.clone(), Value::String(slug));
            }
        }
    }
}

pub fn slugify(s: &str) -> String {
    let mut slug = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 200 {
            break;
        }
    }
    slug.trim_end_matches('-').to_string()
}

pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn valid_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(v: Value) -> ContentType {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reserved_and_bad_names_are_named() {
        let t = ty(json!({"name": "types", "fields": [{"name": "id", "type": "short-text"}]}));
        let e = t.check(&BTreeMap::new());
        assert!(e["name"].contains("reserved"), "{e:?}");
        assert!(e["id"].contains("reserved"), "{e:?}");
    }

    #[test]
    fn values_are_checked_per_field() {
        let t = ty(json!({"name": "a", "fields": [
            {"name": "t", "type": "short-text", "required": true, "max-length": 3},
            {"name": "n", "type": "integer", "min": 1},
            {"name": "s", "type": "slug", "from": "t"},
        ]}));
        assert!(t.check(&BTreeMap::new()).is_empty());
        let mut f = json!({"t": "abcd", "n": 0}).as_object().unwrap().clone();
        complete(&t, &mut f);
        let e = check_entry(&t, &f);
        assert_eq!(e["t"], "must be at most 3 characters long");
        assert_eq!(e["n"], "must be at least 1");
        assert_eq!(f["s"], "abcd");
    }
}

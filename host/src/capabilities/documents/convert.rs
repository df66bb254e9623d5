//! WIT values to and from the documents store's types.

use serde_json::Value;
use ucms_documents::{self as store, DocError, Path};

use crate::wit::latest::ucms::host::documents::{
    BatchFailure, Comparison, Document, DocumentError, Filter, FilterNode, Index, Page, QuerySpec,
    RevisionConflict, SearchHit, SearchPage, SearchQuery, Write, WriteResult,
};

/// Most nodes in one filter tree.
pub const MAX_FILTER_NODES: usize = 200;
/// Most paths in a sort or a projection.
const MAX_PATHS: usize = 64;

fn invalid(message: impl Into<String>) -> DocumentError {
    DocumentError::Invalid(message.into())
}

pub(super) fn error(plugin: &str, error: DocError) -> DocumentError {
    match error {
        DocError::Invalid(m) => DocumentError::Invalid(m),
        DocError::NotFound { .. } => DocumentError::NotFound(error.to_string()),
        DocError::Conflict {
            id,
            expected,
            actual,
        } => DocumentError::Conflict(RevisionConflict {
            id,
            expected,
            actual,
        }),
        DocError::Unique { .. } => DocumentError::UniqueViolation(error.to_string()),
        DocError::AlreadyExists { .. } => DocumentError::AlreadyExists(error.to_string()),
        DocError::QuotaExceeded(m) => DocumentError::QuotaExceeded(m),
        DocError::Batch { op: index, source } => {
            let inner = self::error(plugin, *source);
            DocumentError::BatchFailed(BatchFailure {
                index: index as u32,
                code: code(&inner).to_string(),
                message: message(&inner),
            })
        }
        DocError::Aborted(e) => {
            tracing::warn!(plugin, error = %format!("{e:#}"), "a documents batch was rolled back");
            DocumentError::Unavailable(
                "the batch was rolled back because its events could not be stored; try again later"
                    .into(),
            )
        }
        DocError::Unavailable(m) => {
            tracing::warn!(plugin, error = %m, "documents store failure");
            DocumentError::Unavailable("the document store is unavailable; try again later".into())
        }
        other => {
            tracing::warn!(plugin, error = %other, "documents store failure");
            DocumentError::Unavailable(other.to_string())
        }
    }
}

/// The error's code, as in the WIT variant's case name.
pub(super) fn code(error: &DocumentError) -> &'static str {
    match error {
        DocumentError::Invalid(_) => "invalid",
        DocumentError::NotFound(_) => "not-found",
        DocumentError::Conflict(_) => "conflict",
        DocumentError::UniqueViolation(_) => "unique-violation",
        DocumentError::AlreadyExists(_) => "already-exists",
        DocumentError::QuotaExceeded(_) => "quota-exceeded",
        DocumentError::BatchFailed(_) => "batch-failed",
        DocumentError::Unavailable(_) => "unavailable",
    }
}

fn message(error: &DocumentError) -> String {
    match error {
        DocumentError::Invalid(m)
        | DocumentError::NotFound(m)
        | DocumentError::UniqueViolation(m)
        | DocumentError::AlreadyExists(m)
        | DocumentError::QuotaExceeded(m)
        | DocumentError::Unavailable(m) => m.clone(),
        DocumentError::Conflict(c) => format!(
            "document '{}' is at revision {}, not {}",
            c.id, c.actual, c.expected
        ),
        DocumentError::BatchFailed(b) => b.message.clone(),
    }
}

pub(super) fn json_object(text: &str, what: &str) -> Result<Value, DocumentError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(invalid(format!("{what} must be a JSON object"))),
        Err(e) => Err(invalid(format!("{what} is not valid JSON: {e}"))),
    }
}

fn json_value(text: &str, path: &str) -> Result<Value, DocumentError> {
    serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "the value compared with '{path}' is not valid JSON: {e}"
        ))
    })
}

fn path(text: &str) -> Result<Path, DocumentError> {
    Path::parse(text).map_err(|e| match e {
        DocError::Invalid(m) => invalid(m),
        other => invalid(other.to_string()),
    })
}

fn paths(list: &[String], what: &str) -> Result<Vec<Path>, DocumentError> {
    if list.len() > MAX_PATHS {
        return Err(invalid(format!(
            "{what} names {} paths; at most {MAX_PATHS} are allowed",
            list.len()
        )));
    }
    list.iter().map(|p| path(p)).collect()
}

/// Rebuilds the tree from its flattened form. Children must come before their parent and each
/// node may be used once, so what arrives is a tree (no cycles, no shared subtrees that would
/// multiply into an exponential query).
pub(super) fn filter(filter: Filter) -> Result<store::Filter, DocumentError> {
    let Filter { nodes, root } = filter;
    if nodes.is_empty() {
        return Err(invalid("the filter has no nodes"));
    }
    if nodes.len() > MAX_FILTER_NODES {
        return Err(invalid(format!(
            "the filter has {} nodes; at most {MAX_FILTER_NODES} are allowed",
            nodes.len()
        )));
    }
    let root = root as usize;
    if root >= nodes.len() {
        return Err(invalid(format!(
            "the filter's root is node {root}, but there are only {} nodes",
            nodes.len()
        )));
    }
    let mut built: Vec<Option<store::Filter>> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.into_iter().enumerate() {
        let mut take = |child: u32| -> Result<store::Filter, DocumentError> {
            let c = child as usize;
            if c >= i {
                return Err(invalid(format!(
                    "filter node {i} names node {c} as a child; children must come before their parent"
                )));
            }
            built[c].take().ok_or_else(|| {
                invalid(format!("filter node {c} is used twice; a filter is a tree"))
            })
        };
        let cmp = |c: Comparison| -> Result<(Path, Value), DocumentError> {
            let value = json_value(&c.value, &c.path)?;
            Ok((path(&c.path)?, value))
        };
        let list = |c: Comparison| -> Result<(Path, Vec<Value>), DocumentError> {
            let (p, v) = cmp(c)?;
            match v {
                Value::Array(items) => Ok((p, items)),
                _ => Err(invalid("in-list and not-in take a JSON array of values")),
            }
        };
        let node = match node {
            FilterNode::Eq(c) => cmp(c).map(|(p, v)| store::Filter::Eq(p, v))?,
            FilterNode::Ne(c) => cmp(c).map(|(p, v)| store::Filter::Ne(p, v))?,
            FilterNode::Lt(c) => cmp(c).map(|(p, v)| store::Filter::Lt(p, v))?,
            FilterNode::Lte(c) => cmp(c).map(|(p, v)| store::Filter::Lte(p, v))?,
            FilterNode::Gt(c) => cmp(c).map(|(p, v)| store::Filter::Gt(p, v))?,
            FilterNode::Gte(c) => cmp(c).map(|(p, v)| store::Filter::Gte(p, v))?,
            FilterNode::InList(c) => list(c).map(|(p, v)| store::Filter::In(p, v))?,
            FilterNode::NotIn(c) => list(c).map(|(p, v)| store::Filter::NotIn(p, v))?,
            FilterNode::Contains(c) => cmp(c).map(|(p, v)| store::Filter::Contains(p, v))?,
            FilterNode::StartsWith(c) => match cmp(c)? {
                (p, Value::String(s)) => store::Filter::StartsWith(p, s),
                _ => return Err(invalid("starts-with takes a JSON string")),
            },
            FilterNode::Exists(p) => store::Filter::Exists(path(&p)?),
            FilterNode::IsNull(p) => store::Filter::IsNull(path(&p)?),
            FilterNode::And(children) => store::Filter::And(
                children
                    .into_iter()
                    .map(&mut take)
                    .collect::<Result<_, _>>()?,
            ),
            FilterNode::Or(children) => store::Filter::Or(
                children
                    .into_iter()
                    .map(&mut take)
                    .collect::<Result<_, _>>()?,
            ),
            FilterNode::Not(child) => store::Filter::Not(Box::new(take(child)?)),
        };
        built.push(Some(node));
    }
    let tree = built[root]
        .take()
        .ok_or_else(|| invalid(format!("the filter's root, node {root}, is also a child")))?;
    if let Some(unused) = built.iter().position(Option::is_some) {
        return Err(invalid(format!(
            "filter node {unused} is not part of the tree under the root"
        )));
    }
    Ok(tree)
}

fn projection(fields: Option<Vec<String>>) -> Result<Option<Vec<Path>>, DocumentError> {
    fields.map(|f| paths(&f, "the projection")).transpose()
}

pub(super) fn query(q: QuerySpec) -> Result<store::Query, DocumentError> {
    if q.sort.len() > MAX_PATHS {
        return Err(invalid(format!("sort on at most {MAX_PATHS} paths")));
    }
    Ok(store::Query {
        filter: q.filter.map(filter).transpose()?,
        sort: q
            .sort
            .into_iter()
            .map(|s| {
                Ok(store::Sort {
                    path: path(&s.path)?,
                    descending: s.descending,
                })
            })
            .collect::<Result<_, DocumentError>>()?,
        limit: q.limit,
        offset: q.offset,
        cursor: q.cursor,
        fields: projection(q.fields)?,
        with_total: q.with_total,
    })
}

pub(super) fn search(q: SearchQuery) -> Result<store::Search, DocumentError> {
    Ok(store::Search {
        text: q.text,
        filter: q.filter.map(filter).transpose()?,
        limit: q.limit,
        offset: q.offset,
        fields: projection(q.fields)?,
        with_total: q.with_total,
    })
}

pub(super) fn writes(writes: Vec<Write>) -> Result<Vec<store::WriteOp>, DocumentError> {
    writes
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let what = format!("write {i} of the batch");
            Ok(match w {
                Write::Insert(op) => store::WriteOp::Insert {
                    collection: op.collection,
                    id: op.id,
                    data: json_object(&op.data, &what)?,
                },
                Write::Replace(op) => store::WriteOp::Replace {
                    collection: op.collection,
                    id: op.id,
                    data: json_object(&op.data, &what)?,
                    expected_revision: op.expected_revision,
                },
                Write::Patch(op) => store::WriteOp::Patch {
                    collection: op.collection,
                    id: op.id,
                    patch: json_object(&op.data, &what)?,
                    expected_revision: op.expected_revision,
                },
                Write::Delete(op) => store::WriteOp::Delete {
                    collection: op.collection,
                    id: op.id,
                    expected_revision: op.expected_revision,
                },
            })
        })
        .collect()
}

pub(super) fn index(index: Index) -> Result<store::IndexSpec, DocumentError> {
    Ok(store::IndexSpec {
        name: index.name,
        fields: paths(&index.fields, "the index")?,
        unique: index.unique,
    })
}

pub(super) fn index_out(spec: store::IndexSpec) -> Index {
    Index {
        name: spec.name,
        fields: spec.fields.iter().map(ToString::to_string).collect(),
        unique: spec.unique,
    }
}

pub(super) fn search_spec(
    fields: &[String],
    language: &str,
) -> Result<store::SearchSpec, DocumentError> {
    Ok(store::SearchSpec {
        fields: paths(fields, "full-text search")?,
        language: language.to_string(),
    })
}

pub(super) fn document(d: store::Document) -> Document {
    Document {
        id: d.id,
        revision: d.revision,
        data: d.data.to_string(),
        created_at_ms: d.created_at_ms,
        updated_at_ms: d.updated_at_ms,
    }
}

pub(super) fn page(p: store::Page) -> Page {
    Page {
        documents: p.documents.into_iter().map(document).collect(),
        next_cursor: p.next_cursor,
        total: p.total,
    }
}

pub(super) fn search_page(p: store::SearchPage) -> SearchPage {
    SearchPage {
        hits: p
            .hits
            .into_iter()
            .map(|(d, score)| SearchHit {
                document: document(d),
                score,
            })
            .collect(),
        total: p.total,
    }
}

pub(super) fn write_result(r: store::WriteResult) -> WriteResult {
    match r {
        store::WriteResult::Written(d) => WriteResult::Written(document(d)),
        store::WriteResult::Deleted(b) => WriteResult::Deleted(b),
    }
}

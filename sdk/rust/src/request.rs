use serde::de::DeserializeOwned;

use crate::bindings::exports::ucms::plugin::http_handler;
use crate::blobs::BlobInfo;
use crate::{Error, Principal, Result};

/// A file the host streamed into the plugin's blobs before calling the handler, on a route the
/// manifest declares with `upload = true`.
///
/// The blob is already stored under [`BlobInfo::key`]; keep it, read it with
/// [`crate::blobs::get`] or [`crate::blobs::reader`], or delete it with [`crate::blobs::delete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The multipart form field it came in, or `body` for a raw (non-multipart) upload.
    pub field: String,
    /// The file name the client gave, if any. Never trust it as a path.
    pub filename: Option<String>,
    /// Where it is stored, with its size, content type and SHA-256.
    pub blob: BlobInfo,
}

/// An HTTP request the host routed to this plugin, after authenticating the caller and checking the
/// route's permission.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    path: String,
    route: String,
    params: Vec<(String, String)>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    principal: Principal,
    request_id: String,
    uploads: Vec<Upload>,
}

impl Request {
    pub(crate) fn from_raw(raw: http_handler::Request) -> Self {
        Self {
            method: raw.method,
            path: raw.path,
            route: raw.route,
            params: raw.params,
            query: raw.query,
            headers: raw.headers,
            body: raw.body,
            principal: Principal::from_raw(raw.principal),
            request_id: raw.request_id,
            uploads: raw
                .uploads
                .into_iter()
                .map(|u| Upload {
                    field: u.field,
                    filename: u.filename,
                    blob: BlobInfo::from_raw(u.blob),
                })
                .collect(),
        }
    }

    /// A request built by hand, for unit tests of handlers.
    pub fn builder(method: &str, route: &str) -> RequestBuilder {
        RequestBuilder(Self {
            method: method.to_ascii_uppercase(),
            path: route.to_string(),
            route: route.to_string(),
            params: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            principal: Principal::Anonymous,
            request_id: String::new(),
            uploads: Vec::new(),
        })
    }

    /// Upper-case method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Path below the plugin's mount point, for example `/items/42`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The manifest route that matched, for example `/items/{id}`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The value of a route parameter, for example `id` in `/items/{id}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.params, name)
    }

    /// A route parameter that must be there (it is, when the route declares it); otherwise 400.
    pub fn require_param(&self, name: &str) -> Result<&str> {
        self.param(name)
            .ok_or_else(|| Error::bad_request(format!("missing route parameter '{name}'")))
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }

    /// Every query parameter, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body parsed as JSON into `T`; a body that doesn't parse is a 400 that says why.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if self.body.is_empty() {
            return Err(Error::bad_request("expected a JSON body, got an empty one"));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::bad_request(format!("the JSON body is not valid: {e}")))
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The host's id for this request, to put in log lines.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// On a route declared with `upload = true`: the files the host already stored in the
    /// plugin's blobs, in the order they came. Empty on other routes.
    ///
    /// For a multipart form, [`Request::body`] then holds the other form fields as a JSON object
    /// of strings (read it with `req.json::<HashMap<String, String>>()`); for a raw upload there is
    /// one upload named `body`.
    ///
    /// ```no_run
    /// use ucms_sdk::{Error, Request, Response, Result};
    ///
    /// fn upload(req: Request) -> Result<Response> {
    ///     let file = req
    ///         .uploads()
    ///         .first()
    ///         .ok_or_else(|| Error::bad_request("send a file"))?;
    ///     Ok(Response::json(&serde_json::json!({
    ///         "key": file.blob.key,
    ///         "size": file.blob.size,
    ///         "content_type": file.blob.content_type,
    ///     }))
    ///     .with_status(201))
    /// }
    /// ```
    pub fn uploads(&self) -> &[Upload] {
        &self.uploads
    }

    /// The first upload that came in form field `field` (`body` for a raw upload).
    pub fn upload(&self, field: &str) -> Option<&Upload> {
        self.uploads.iter().find(|u| u.field == field)
    }
}

/// Builds a [`Request`] for a unit test.
#[derive(Debug)]
pub struct RequestBuilder(Request);

impl RequestBuilder {
    pub fn path(mut self, path: &str) -> Self {
        self.0.path = path.to_string();
        self
    }
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.0.params.push((name.into(), value.into()));
        self
    }
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.0.query.push((name.into(), value.into()));
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0
            .headers
            .push((name.to_ascii_lowercase(), value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = body.into();
        self
    }
    pub fn principal(mut self, principal: Principal) -> Self {
        self.0.principal = principal;
        self
    }
    pub fn upload(mut self, upload: Upload) -> Self {
        self.0.uploads.push(upload);
        self
    }
    pub fn build(self) -> Request {
        self.0
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

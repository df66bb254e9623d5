use serde::Serialize;

use crate::Error;
use crate::bindings::exports::ucms::plugin::http_handler;

/// An HTTP response from a route handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with `value` as JSON. A value that can't be serialized gives a 500 that says so.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(200)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(e) => Error::internal(format!("the response could not be serialized: {e}")).into(),
        }
    }

    /// 200 with a `text/plain` body.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(200)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into().into_bytes())
    }

    /// 204 No Content.
    pub fn no_content() -> Self {
        Self::new(204)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header (replacing one of the same name).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn into_raw(self) -> http_handler::Response {
        http_handler::Response {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }
}

impl From<Error> for Response {
    fn from(error: Error) -> Self {
        let body = serde_json::json!({
            "error": { "code": error.code(), "message": error.message() }
        });
        Self::new(error.status())
            .with_header("content-type", "application/json")
            .with_body(serde_json::to_vec(&body).unwrap_or_default())
    }
}

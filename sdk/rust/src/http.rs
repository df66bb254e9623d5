//! Outbound HTTP requests. Requires the `http-client` capability listing the destination hosts.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::ucms::host::http_client as raw;
use crate::{Error, Result};

/// An outbound request under construction.
#[derive(Debug, Clone)]
pub struct Outbound {
    request: raw::Request,
}

/// A response to an outbound request.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Incoming {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                502,
                "upstream_invalid_json",
                format!("upstream answered with invalid JSON: {e}"),
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Outbound {
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            request: raw::Request {
                method: method.to_ascii_uppercase(),
                url: url.to_string(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout_ms: None,
            },
        }
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request
            .headers
            .push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self> {
        Ok(self
            .header("content-type", "application/json")
            .body(serde_json::to_vec(value)?))
    }

    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.request.timeout_ms = Some(ms);
        self
    }

    /// Sends the request. Refusals by the host (host not granted, private address, limit reached)
    /// are errors with the reason.
    pub fn send(self) -> Result<Incoming> {
        let response = raw::send(&self.request).map_err(|e| match e {
            raw::HttpError::Denied(m) => Error::new(500, "egress_denied", m),
            raw::HttpError::InvalidRequest(m) => Error::new(500, "egress_invalid_request", m),
            raw::HttpError::LimitExceeded(m) => Error::new(500, "egress_limit_exceeded", m),
            raw::HttpError::Timeout => Error::new(
                504,
                "upstream_timeout",
                "the upstream did not answer in time",
            ),
            raw::HttpError::ResponseTooLarge(cap) => Error::new(
                502,
                "upstream_response_too_large",
                format!("the upstream response exceeded {cap} bytes"),
            ),
            raw::HttpError::ConnectionFailed(m) => Error::new(502, "upstream_unreachable", m),
        })?;
        Ok(Incoming {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

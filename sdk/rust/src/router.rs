use crate::{Error, Request, Response, Result};

/// A route handler: a function from a request to a response.
pub type Handler = fn(Request) -> Result<Response>;

/// Maps the routes declared in the manifest to handler functions.
///
/// The host has already matched the request against the manifest (and checked its permission), so
/// dispatch is by the declared method and path pattern, exactly as written in `ucms-plugin.toml`.
#[derive(Debug, Default, Clone)]
pub struct Router {
    routes: Vec<(String, String, Handler)>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler for `method` and the manifest path pattern `route` (`/items/{id}`).
    pub fn route(mut self, method: &str, route: &str, handler: Handler) -> Self {
        self.routes
            .push((method.to_ascii_uppercase(), route.to_string(), handler));
        self
    }

    pub fn get(self, route: &str, handler: Handler) -> Self {
        self.route("GET", route, handler)
    }

    pub fn post(self, route: &str, handler: Handler) -> Self {
        self.route("POST", route, handler)
    }

    pub fn put(self, route: &str, handler: Handler) -> Self {
        self.route("PUT", route, handler)
    }

    pub fn patch(self, route: &str, handler: Handler) -> Self {
        self.route("PATCH", route, handler)
    }

    pub fn delete(self, route: &str, handler: Handler) -> Self {
        self.route("DELETE", route, handler)
    }

    /// Runs the handler registered for the request's method and route.
    pub fn dispatch(&self, request: Request) -> Result<Response> {
        let handler = self
            .routes
            .iter()
            .find(|(method, route, _)| method == request.method() && route == request.route())
            .map(|(_, _, handler)| *handler);
        match handler {
            Some(handler) => handler(request),
            None => Err(Error::new(
                404,
                "no_handler",
                format!(
                    "the manifest declares {} {} but the plugin's router has no handler for it",
                    request.method(),
                    request.route()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: Request) -> Result<Response> {
        Ok(Response::text("ok"))
    }

    fn item(req: Request) -> Result<Response> {
        Ok(Response::text(req.require_param("id")?.to_string()))
    }

    #[test]
    fn dispatches_by_method_and_pattern() {
        let router = Router::new().get("/a", ok).get("/items/{id}", item);
        let req = Request::builder("GET", "/items/{id}")
            .path("/items/7")
            .param("id", "7")
            .build();
        assert_eq!(router.dispatch(req).unwrap().body(), b"7");
        let wrong_method = Request::builder("POST", "/a").build();
        let err = router.dispatch(wrong_method).unwrap_err();
        assert_eq!((err.status(), err.code()), (404, "no_handler"));
    }

    #[test]
    fn errors_render_as_json() {
        let response = Response::from(Error::bad_request("name is missing"));
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "name is missing");
    }
}

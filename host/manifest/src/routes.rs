//! The routes of a plugin as the host matches them: one `matchit` router per method.
//!
//! Validation ([`crate::Manifest::parse`]) and the host's request dispatch build their routers
//! through [`RouteTable`], so a pattern the manifest accepted is a pattern the host can route, and
//! the pure part of dispatch can be tested and fuzzed without a runtime.

use std::collections::BTreeMap;

use crate::{Method, Route};

/// The longest route path pattern, in bytes.
pub const MAX_ROUTE_PATH: usize = 256;

/// One router per method over route indexes.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routers: BTreeMap<Method, matchit::Router<usize>>,
}

/// The route a request path matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHit {
    /// Index into the manifest's routes.
    pub index: usize,
    /// Parameter values, still percent-encoded.
    pub params: Vec<(String, String)>,
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMiss {
    NotFound,
    /// The path exists for these other methods.
    MethodNotAllowed(Vec<Method>),
}

impl RouteTable {
    /// The table of a validated manifest's routes (in order: a route's index is its position).
    pub fn build(routes: &[Route]) -> Result<Self, String> {
        let mut table = Self::default();
        for (i, route) in routes.iter().enumerate() {
            table.insert(route.method, &route.path, i)?;
        }
        Ok(table)
    }

    /// Adds a pattern, checked like the manifest checks it: the reason when it can't be routed
    /// (bad characters, or a conflict with a pattern already in the table).
    pub fn insert(&mut self, method: Method, path: &str, index: usize) -> Result<(), String> {
        check_path(path)?;
        self.routers
            .entry(method)
            .or_default()
            .insert(path, index)
            .map_err(|e| format!("{method} {path} can't be routed: {e}"))
    }

    /// The route for `method` and `path` (below `/api/{id}`), with its parameters.
    pub fn at(&self, method: Method, path: &str) -> Result<RouteHit, RouteMiss> {
        if let Some(router) = self.routers.get(&method)
            && let Ok(found) = router.at(path)
        {
            return Ok(RouteHit {
                index: *found.value,
                params: found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
        }
        let allowed: Vec<Method> = self
            .routers
            .iter()
            .filter(|(_, router)| router.at(path).is_ok())
            .map(|(m, _)| *m)
            .collect();
        if allowed.is_empty() {
            Err(RouteMiss::NotFound)
        } else {
            Err(RouteMiss::MethodNotAllowed(allowed))
        }
    }
}

/// The characters and shapes a route (or admin page) path may have.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("'{path}' must start with '/'"));
    }
    if path.len() > MAX_ROUTE_PATH {
        return Err(format!(
            "a route path is at most {MAX_ROUTE_PATH} characters"
        ));
    }
    if path.contains("//") || path.contains('?') || path.contains('#') || path.contains("..") {
        return Err(format!("'{path}' may not contain '//', '..', '?' or '#'"));
    }
    // The router reads `{{` and `}}` as escaped braces: `/a}}` would serve `/a}`, not the path
    // the author wrote (found by the `routes` fuzz target).
    if path.contains("{{") || path.contains("}}") {
        return Err(format!(
            "'{path}' has '{{{{' or '}}}}'; braces only delimit {{param}} segments"
        ));
    }
    let ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.~{}*".contains(c));
    if !ok {
        return Err(format!(
            "'{path}' has a character routes don't allow; use letters, digits, '/', '-', '_', '.', '~' and {{param}} segments"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_reports_other_methods() {
        let mut t = RouteTable::default();
        t.insert(Method::Get, "/items/{id}", 0).unwrap();
        t.insert(Method::Post, "/items/{id}", 1).unwrap();
        t.insert(Method::Get, "/files/{*rest}", 2).unwrap();
        let hit = t.at(Method::Get, "/items/42").unwrap();
        assert_eq!(hit.index, 0);
        assert_eq!(hit.params, vec![("id".to_string(), "42".to_string())]);
        assert_eq!(t.at(Method::Get, "/files/a/b").unwrap().index, 2);
        assert_eq!(
            t.at(Method::Delete, "/items/1"),
            Err(RouteMiss::MethodNotAllowed(vec![Method::Get, Method::Post]))
        );
        assert_eq!(t.at(Method::Get, "/nope"), Err(RouteMiss::NotFound));
        assert!(t.insert(Method::Get, "/items/{other}", 3).is_err());
        assert!(t.insert(Method::Get, "/a b", 4).is_err());
    }

    /// Found by the `routes` fuzz target: `/a}}` was accepted, but the router reads `}}` as an
    /// escaped brace, so the route answered `/a}` and never the path the manifest declared.
    #[test]
    fn escaped_braces_are_refused_so_a_route_matches_its_own_path() {
        let mut t = RouteTable::default();
        for path in ["/a}}", "/{{a", "/x/{{id}}", "/{id}}}"] {
            let err = t.insert(Method::Delete, path, 0).unwrap_err();
            assert!(err.contains("braces only delimit"), "{path}: {err}");
        }
        t.insert(Method::Delete, "/a/{id}", 0).unwrap();
        assert_eq!(t.at(Method::Delete, "/a/7").unwrap().index, 0);
    }
}

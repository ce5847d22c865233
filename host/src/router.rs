//! HTTP trigger routing with Spin's rules: `/exact` matches one path, `/prefix/...` matches the
//! prefix and everything below it, and the most specific route wins (exact before wildcard,
//! longer prefix before shorter).

use anyhow::{Result, bail, ensure};

/// The trailing wildcard of a route.
const WILDCARD: &str = "/...";

/// A route table built from the manifest's HTTP triggers.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
struct Route {
    /// As written in the manifest, e.g. `/dub/...`.
    raw: String,
    /// Without the wildcard, e.g. `/dub` (empty for `/...`).
    prefix: String,
    wildcard: bool,
    component: String,
}

/// The result of routing one request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Component id to run.
    pub component: String,
    /// The route as written in the manifest (`spin-raw-component-route`, `spin-matched-route`).
    pub raw_route: String,
    /// The route without its wildcard (`spin-component-route`).
    pub component_route: String,
    /// The part of the path below the route (`spin-path-info`): `/x/y` for `/dub/...` and
    /// `/dub/x/y`; empty when the path equals the route.
    pub path_info: String,
}

/// Check a route as written in a manifest.
pub fn validate_route(route: &str) -> Result<()> {
    ensure!(
        route.starts_with('/'),
        "route `{route}` must start with `/`"
    );
    let body = route.strip_suffix(WILDCARD).unwrap_or(route);
    if body.contains("...") {
        bail!("route `{route}`: `...` is only allowed as the last segment");
    }
    if body.contains("//") {
        bail!("route `{route}` contains an empty segment");
    }
    Ok(())
}

impl Router {
    /// Build from `(route, component)` pairs; routes must already be validated.
    pub fn new(routes: &[(String, String)]) -> Result<Self> {
        let mut out = Vec::with_capacity(routes.len());
        for (raw, component) in routes {
            validate_route(raw)?;
            let (prefix, wildcard) = match raw.strip_suffix(WILDCARD) {
                Some(p) => (p.to_string(), true),
                None => (raw.trim_end_matches('/').to_string(), false),
            };
            out.push(Route {
                raw: raw.clone(),
                prefix,
                wildcard,
                component: component.clone(),
            });
        }
        // Most specific first: exact routes, then longer prefixes. Stable, so manifest order
        // breaks ties.
        out.sort_by_key(|r| (r.wildcard, std::cmp::Reverse(r.prefix.len())));
        Ok(Self { routes: out })
    }

    /// Route a request path (no query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        self.routes.iter().find_map(|r| {
            let path_info = if r.wildcard {
                let rest = path.strip_prefix(r.prefix.as_str())?;
                // `/dub/...` matches `/dub` and `/dub/x`, never `/dubbing`.
                if !(rest.is_empty() || rest.starts_with('/')) {
                    return None;
                }
                rest.to_string()
            } else {
                if path.trim_end_matches('/') != r.prefix {
                    return None;
                }
                String::new()
            };
            Some(RouteMatch {
                component: r.component.clone(),
                raw_route: r.raw.clone(),
                component_route: r.prefix.clone(),
                path_info,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let routes: Vec<(String, String)> = routes
            .iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect();
        Router::new(&routes).unwrap()
    }

    #[test]
    fn catch_all_matches_everything_with_full_path_info() {
        let r = router(&[("/...", "edge")]);
        let m = r.route("/dub/es/index.m3u8").unwrap();
        assert_eq!(m.component, "edge");
        assert_eq!(m.raw_route, "/...");
        assert_eq!(m.component_route, "");
        assert_eq!(m.path_info, "/dub/es/index.m3u8");
        assert_eq!(r.route("/").unwrap().path_info, "/");
        assert_eq!(r.route("/healthz").unwrap().path_info, "/healthz");
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            ("/...", "fallback"),
            ("/dub/...", "edge"),
            ("/dub/es/...", "es"),
            ("/healthz", "health"),
        ]);
        assert_eq!(r.route("/healthz").unwrap().component, "health");
        assert_eq!(r.route("/healthz/").unwrap().component, "health");
        assert_eq!(r.route("/healthz/x").unwrap().component, "fallback");
        let m = r.route("/dub/fr/a.ts").unwrap();
        assert_eq!(
            (m.component.as_str(), m.path_info.as_str()),
            ("edge", "/fr/a.ts")
        );
        assert_eq!(m.component_route, "/dub");
        let m = r.route("/dub/es/x").unwrap();
        assert_eq!((m.component.as_str(), m.path_info.as_str()), ("es", "/x"));
        let m = r.route("/dub").unwrap();
        assert_eq!((m.component.as_str(), m.path_info.as_str()), ("edge", ""));
        // A prefix match must end at a segment boundary.
        assert_eq!(r.route("/dubbing").unwrap().component, "fallback");
    }

    #[test]
    fn unmatched_paths_are_none() {
        let r = router(&[("/dub/...", "edge"), ("/healthz", "h")]);
        assert!(r.route("/other").is_none());
        assert!(r.route("/").is_none());
        assert!(r.route("/health").is_none());
        assert!(r.route("/dubx/y").is_none());
    }

    #[test]
    fn invalid_routes_are_rejected() {
        for bad in ["dub/...", "/a/.../b", "/a//b", ""] {
            assert!(validate_route(bad).is_err(), "{bad}");
        }
        for ok in ["/", "/...", "/dub/...", "/healthz"] {
            validate_route(ok).unwrap();
        }
    }
}

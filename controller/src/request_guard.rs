//! Refuses requests that a web browser sends on behalf of another site, and writes whose
//! body a browser could send without asking first.
//!
//! A page on any site can make the user's browser send a "simple" request (a form POST,
//! or `fetch` with `mode: "no-cors"`) to `http://127.0.0.1:7070` without a CORS
//! preflight. The controller must not act on one, with or without tokens. The rules,
//! each checked by [`check`] and named by its [`Refusal`]:
//!
//! 1. **Writes carry a JSON or YAML body type.** `POST`, `PUT` and `PATCH` need a
//!    `Content-Type` of `application/json` (or `application/*+json`), `application/yaml`,
//!    `application/x-yaml` or `text/yaml`, even when the body is empty; anything else is
//!    `415`. None of these types is CORS-safelisted, so a browser sends such a request
//!    cross-site only after a preflight, which this API never grants.
//! 2. **Fetch Metadata.** A request whose `Sec-Fetch-Site` is `cross-site` or
//!    `same-site` is `403`, except a top-level `GET`/`HEAD` navigation (a link to the
//!    dashboard). `same-site` counts as foreign because another port on the same host is
//!    another program.
//! 3. **Origin.** A write whose `Origin` is present and differs from the request's own
//!    host (or is `null`) is `403`: the check for browsers that do not send Fetch Metadata.
//! 4. **Host, on loopback.** When the API listens on a loopback address, a request whose
//!    `Host` is not a loopback name (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`)
//!    or one of the allowed hosts is `403`. This stops DNS rebinding: a page whose own
//!    name was made to resolve to 127.0.0.1 is same-origin in the browser's eyes, but
//!    it still says its own name in `Host`.
//!
//! Requests from programs (the CLI, curl, Git hosts' webhooks) send no `Origin` or
//! Fetch Metadata and pass rules 2 and 3; the dashboard's own requests are same-origin.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the guard needs to know about the server.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// The API listens on a loopback address only: rule 4 applies.
    pub loopback: bool,
    /// Host names (without port) accepted besides the loopback ones, lower case.
    pub allowed_hosts: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Rule 1: a write without a JSON or YAML `Content-Type`.
    UnsupportedMediaType(String),
    /// Rule 2: `Sec-Fetch-Site` names another site.
    CrossSiteFetch(String),
    /// Rule 3: `Origin` names another origin.
    ForeignOrigin(String),
    /// Rule 4: `Host` is not a loopback name while the API listens on loopback.
    ForeignHost(String),
}

impl Refusal {
    /// The short label used in logs and the refusal metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType(_) => "content-type",
            Self::CrossSiteFetch(_) => "cross-site",
            Self::ForeignOrigin(_) => "origin",
            Self::ForeignHost(_) => "host",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::UnsupportedMediaType(got) if got.is_empty() => {
                "a write needs Content-Type application/json or application/yaml; the request \
                 has none"
                    .to_owned()
            }
            Self::UnsupportedMediaType(got) => format!(
                "unsupported Content-Type {got:?}: a write needs application/json or \
                 application/yaml"
            ),
            Self::CrossSiteFetch(site) => format!(
                "refused: the browser says this request comes from another site \
                 (Sec-Fetch-Site: {site}); the API answers only its own pages and programs"
            ),
            Self::ForeignOrigin(origin) => format!(
                "refused: a write from the origin {origin:?}, which is not this API's; the \
                 API answers only its own pages and programs"
            ),
            Self::ForeignHost(host) => format!(
                "refused: Host {host:?} is not a loopback name and the API listens on \
                 loopback (allow it with the controller's --allowed-host)"
            ),
        }
    }
}

/// Applies rules 1 to 4 to a request's method, URI and headers.
pub fn check(
    config: &GuardConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let host = request_host(uri, headers);
    if config.loopback
        && let Some(host) = host
        && !host_allowed(config, host)
    {
        return Err(Refusal::ForeignHost(host.to_owned()));
    }
    let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(site) = header_str(headers, "sec-fetch-site") {
        let foreign = matches!(site, "cross-site" | "same-site");
        let navigation = !write
            && header_str(headers, "sec-fetch-mode") == Some("navigate")
            && !matches!(
                header_str(headers, "sec-fetch-dest"),
                Some("object" | "embed" | "iframe" | "frame")
            );
        if foreign && !navigation {
            return Err(Refusal::CrossSiteFetch(site.to_owned()));
        }
    }
    if write && let Some(origin) = header_str(headers, header::ORIGIN.as_str()) {
        let same = host.is_some_and(|host| origin_matches_host(origin, host));
        if !same {
            return Err(Refusal::ForeignOrigin(origin.to_owned()));
        }
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        let mime = header_str(headers, header::CONTENT_TYPE.as_str())
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !accepted_media_type(&mime) {
            return Err(Refusal::UnsupportedMediaType(mime));
        }
    }
    Ok(())
}

/// Axum middleware: answers a [`Refusal`] as a Kubernetes-style `Status`.
pub async fn guard(State(config): State<Arc<GuardConfig>>, req: Request, next: Next) -> Response {
    match check(&config, req.method(), req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::warn!(
                reason = refusal.reason(),
                method = %req.method(),
                path = %req.uri().path(),
                origin = header_str(req.headers(), header::ORIGIN.as_str()).unwrap_or(""),
                "request refused"
            );
            refuse(&refusal)
        }
    }
}

fn refuse(refusal: &Refusal) -> Response {
    let code = refusal.status();
    let body = concord_schemas::api::ApiStatus {
        kind: "Status".into(),
        status: "Failure".into(),
        message: refusal.message(),
        reason: match refusal {
            Refusal::UnsupportedMediaType(_) => "UnsupportedMediaType",
            _ => "Forbidden",
        }
        .into(),
        code: code.as_u16(),
        errors: Vec::new(),
    };
    (code, axum::Json(body)).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The authority the client addressed: HTTP/2's `:authority`, else `Host`.
fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| header_str(headers, header::HOST.as_str()))
}

fn accepted_media_type(mime: &str) -> bool {
    matches!(
        mime,
        "application/json" | "application/yaml" | "application/x-yaml" | "text/yaml"
    ) || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// `host[:port]` without the port, brackets kept off IPv6 literals.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn host_allowed(config: &GuardConfig, authority: &str) -> bool {
    let host = host_name(authority).to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && ip.is_loopback()
    {
        return true;
    }
    config.allowed_hosts.iter().any(|h| h == host)
}

/// Whether `Origin: scheme://host[:port]` names the same host and port as `authority`.
fn origin_matches_host(origin: &str, authority: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false; // `null` and anything malformed
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let normalise = |a: &str| {
        let a = a.to_ascii_lowercase();
        let name = host_name(&a).to_owned();
        let port = a
            .rsplit_once(':')
            .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .map_or_else(|| default_port.to_owned(), |(_, p)| p.to_owned());
        (name, port)
    };
    normalise(rest.trim_end_matches('/')) == normalise(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> GuardConfig {
        GuardConfig {
            loopback: true,
            allowed_hosts: vec!["concord.internal".into()],
        }
    }

    fn req(method: Method, headers: &[(&str, &str)]) -> (Method, Uri, HeaderMap) {
        let mut map = HeaderMap::new();
        map.insert("host", "127.0.0.1:7070".parse().expect("value"));
        for (k, v) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        (
            method,
            Uri::from_static("/apis/concord.io/v1alpha1/topologies"),
            map,
        )
    }

    fn run(config: &GuardConfig, r: (Method, Uri, HeaderMap)) -> Result<(), Refusal> {
        check(config, &r.0, &r.1, &r.2)
    }

    #[test]
    fn writes_carry_a_json_or_yaml_body_type() {
        let c = loopback();
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/YAML",
            "application/x-yaml",
            "text/yaml",
            "application/merge-patch+json",
        ] {
            assert_eq!(
                run(&c, req(Method::POST, &[("content-type", ct)])),
                Ok(()),
                "{ct}"
            );
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ] {
            let got = run(&c, req(Method::PUT, &[("content-type", ct)]));
            assert_eq!(
                got,
                Err(Refusal::UnsupportedMediaType(
                    ct.split(';').next().unwrap_or("").to_owned()
                )),
                "{ct}"
            );
        }
        assert_eq!(
            run(&c, req(Method::POST, &[])),
            Err(Refusal::UnsupportedMediaType(String::new())),
            "a write with no Content-Type at all"
        );
        // Reads and deletes have no body to type.
        assert_eq!(run(&c, req(Method::GET, &[])), Ok(()));
        assert_eq!(run(&c, req(Method::DELETE, &[])), Ok(()));
    }

    #[test]
    fn fetch_metadata_from_another_site_is_refused_but_navigations_are_not() {
        let c = loopback();
        let json = ("content-type", "application/json");
        for site in ["cross-site", "same-site"] {
            assert_eq!(
                run(&c, req(Method::POST, &[json, ("sec-fetch-site", site)])),
                Err(Refusal::CrossSiteFetch(site.into()))
            );
            // A no-cors GET (an <img> or <script> of another page) is refused too.
            assert_eq!(
                run(
                    &c,
                    req(
                        Method::GET,
                        &[("sec-fetch-site", site), ("sec-fetch-mode", "no-cors")]
                    )
                ),
                Err(Refusal::CrossSiteFetch(site.into()))
            );
            // A link to the dashboard from another site still opens it.
            assert_eq!(
                run(
                    &c,
                    req(
                        Method::GET,
                        &[
                            ("sec-fetch-site", site),
                            ("sec-fetch-mode", "navigate"),
                            ("sec-fetch-dest", "document")
                        ]
                    )
                ),
                Ok(())
            );
            // A form that navigates the page with a POST is still a write.
            assert_eq!(
                run(
                    &c,
                    req(
                        Method::POST,
                        &[
                            json,
                            ("sec-fetch-site", site),
                            ("sec-fetch-mode", "navigate")
                        ]
                    )
                ),
                Err(Refusal::CrossSiteFetch(site.into()))
            );
        }
        for site in ["same-origin", "none"] {
            assert_eq!(
                run(&c, req(Method::POST, &[json, ("sec-fetch-site", site)])),
                Ok(())
            );
        }
    }

    #[test]
    fn writes_from_another_origin_are_refused() {
        let c = loopback();
        let json = ("content-type", "application/json");
        for origin in [
            "https://evil.example",
            "http://127.0.0.1:8080",
            "http://localhost:7070",
            "null",
            "file://",
        ] {
            assert_eq!(
                run(&c, req(Method::POST, &[json, ("origin", origin)])),
                Err(Refusal::ForeignOrigin(origin.into())),
                "{origin}"
            );
        }
        assert_eq!(
            run(
                &c,
                req(Method::POST, &[json, ("origin", "http://127.0.0.1:7070")])
            ),
            Ok(())
        );
        // Reads are left to Fetch Metadata: a same-origin page's GETs carry no Origin
        // anyway, and a cross-origin read is blocked by the browser without CORS.
        assert_eq!(
            run(&c, req(Method::GET, &[("origin", "https://evil.example")])),
            Ok(())
        );
    }

    #[test]
    fn origin_matches_host_with_default_ports_and_case() {
        assert!(origin_matches_host("http://LocalHost", "localhost:80"));
        assert!(origin_matches_host(
            "https://api.example:443",
            "API.example"
        ));
        assert!(origin_matches_host("http://[::1]:7070", "[::1]:7070"));
        assert!(!origin_matches_host(
            "https://api.example",
            "api.example:80"
        ));
        assert!(!origin_matches_host(
            "http://a.example:7070",
            "b.example:7070"
        ));
        assert!(!origin_matches_host(
            "ws://127.0.0.1:7070",
            "127.0.0.1:7070"
        ));
    }

    #[test]
    fn on_loopback_only_loopback_hosts_and_allowed_ones_pass() {
        let c = loopback();
        for host in [
            "127.0.0.1:7070",
            "127.0.0.2",
            "localhost:7070",
            "LOCALHOST.",
            "dash.localhost:7070",
            "[::1]:7070",
            "concord.internal:7070",
        ] {
            let mut r = req(Method::GET, &[]);
            r.2.insert("host", host.parse().expect("value"));
            assert_eq!(run(&c, r), Ok(()), "{host}");
        }
        for host in [
            "rebind.evil.example:7070",
            "10.0.0.1:7070",
            "localhost.evil.example",
        ] {
            let mut r = req(Method::GET, &[]);
            r.2.insert("host", host.parse().expect("value"));
            assert_eq!(run(&c, r), Err(Refusal::ForeignHost(host.into())), "{host}");
        }
        // Not listening on loopback: any host (tokens protect that API).
        let open = GuardConfig::default();
        let mut r = req(Method::GET, &[]);
        r.2.insert("host", "concord.example.com".parse().expect("value"));
        assert_eq!(run(&open, r), Ok(()));
    }
}

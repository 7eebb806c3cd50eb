//! The web dashboard: static HTML, CSS and JavaScript embedded in the binary and served at
//! `/ui/` on the API's port (docs/dashboard.md).
//!
//! The page reads only the HTTP API the CLI uses, with relative URLs, so it works behind
//! a reverse proxy that adds a path prefix. Nothing is fetched from any other host.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::ApiState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../ui/app.css"),
    },
];

/// Whether `path` is one of the dashboard's static files (served without a token).
pub fn is_asset_path(path: &str) -> bool {
    path == "/ui" || path == "/ui/" || path.strip_prefix("/ui/").is_some_and(|p| find(p).is_some())
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `/ui` (redirects to `/ui/`), `/ui/` and `/ui/<file>`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        // Relative redirect: keeps a reverse proxy's path prefix.
        .route("/ui", get(|| async { Redirect::permanent("ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    match find(name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                // Small files; always revalidate so a new controller's page is picked up.
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                ),
            ],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such dashboard file\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_embedded_and_reference_each_other_relatively() {
        let index = std::str::from_utf8(find("index.html").expect("index").body).expect("utf-8");
        assert!(
            index.contains(r#"src="app.js""#),
            "index.html loads app.js relatively"
        );
        assert!(
            index.contains(r#"href="app.css""#),
            "index.html loads app.css relatively"
        );
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body)
                .expect("utf-8")
                .replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{} names an outside host",
                asset.name
            );
        }
        let js = std::str::from_utf8(find("app.js").expect("js").body).expect("utf-8");
        assert!(
            js.contains("\"../apis/concord.io/v1alpha1\""),
            "API base is relative to the page"
        );
    }

    #[test]
    fn only_embedded_files_skip_authentication() {
        assert!(is_asset_path("/ui"));
        assert!(is_asset_path("/ui/"));
        assert!(is_asset_path("/ui/app.js"));
        assert!(!is_asset_path("/ui/../apis"));
        assert!(!is_asset_path("/ui/secret"));
        assert!(!is_asset_path("/apis/concord.io/v1alpha1/topologies"));
    }
}

//! The API's query parameters, tried systematically (issue 16): arbitrary query strings
//! on every route that reads one are answered with a `Status` (400 for bad values)
//! without a panic or a hang, and nothing is stored.
//!
//! No etcd: the store points at a closed port, so every request that gets past its query
//! reaches the store and fails (nothing can be stored); what is checked is that bad
//! queries are refused before that, and that nothing panics or hangs either way.
//! CI runs a bounded number of cases; `PROPTEST_CASES` runs more (docs/operations.md).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use concord_controller::{ApiState, Store, router};
use concord_schemas::api::API_BASE;
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;

/// `ci` cases per property in CI; `PROPTEST_CASES` overrides for long runs.
fn config(ci: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The API router over a store whose etcd is a closed port on loopback.
fn app() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        // Nothing listens on port 9 (discard) here: connections are refused at once.
        let store = runtime()
            .block_on(Store::connect(&["http://127.0.0.1:9".into()], "/fuzz"))
            .expect("lazy connect");
        let (_role, leadership) = concord_controller::leader::channel();
        router(ApiState {
            store,
            metrics: concord_controller::metrics::Metrics::new(),
            readiness: Default::default(),
            commands: None,
            observe: concord_controller::observe::Observer::new(None),
            tokens: None,
            guard: std::sync::Arc::new(concord_controller::request_guard::GuardConfig::default()),
            allow_local_git: false,
            leadership,
        })
    })
}

/// Query keys the routes read, and some they do not.
const KEYS: &[&str] = &[
    "watch",
    "resourceVersion",
    "dryRun",
    "limit",
    "stream",
    "offset",
    "length",
    "traceId",
    "x",
    "",
];

/// Values that break parsers: numbers at and past the limits, signs, specials.
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "-2",
    "true",
    "false",
    "All",
    "stdout",
    "stderr",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999999",
    "1e3",
    "0x10",
    "NaN",
    "00000000000000ff",
    "zzzzzzzzzzzzzzzz",
];

/// Percent-encodes arbitrary bytes (so any value, even invalid UTF-8, makes a valid URI).
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pair() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(String::from),
        1 => proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| encode(&b)),
    ];
    let value = prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(String::from),
        2 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| encode(&b)),
        // Raw URI characters, including broken escapes (`%`, `%zz`, `%ff`).
        1 => "[a-zA-Z0-9%+=&;._~!$'()*,-]{0,12}",
    ];
    prop_oneof![
        4 => (key.clone(), value).prop_map(|(k, v)| format!("{k}={v}")),
        1 => key,
    ]
}

fn query() -> impl Strategy<Value = String> {
    proptest::collection::vec(pair(), 0..4).prop_map(|p| p.join("&"))
}

/// Routes that read a query, with the method to use.
fn route() -> impl Strategy<Value = (Method, String)> {
    let ns = format!("{API_BASE}/namespaces/default");
    let t = format!("{ns}/topologies/wc");
    proptest::sample::select(vec![
        (Method::GET, format!("{API_BASE}/topologies")),
        (Method::GET, format!("{ns}/topologies")),
        (Method::GET, t.clone()),
        (Method::GET, format!("{t}/history")),
        (Method::GET, format!("{t}/traces")),
        (Method::GET, format!("{t}/metrics")),
        (
            Method::GET,
            format!("{t}/tasks/default.wc.count.0.abcdef12.1a2b3c4d/logs"),
        ),
        (Method::GET, format!("{t}/tasks/other.x.y.0.abcdef12/logs")),
        (Method::DELETE, t.clone()),
        (Method::POST, format!("{ns}/topologies")),
        (Method::PUT, t),
        (Method::GET, format!("{API_BASE}/gitrepositories")),
        (Method::GET, format!("{ns}/gitrepositories")),
        (Method::POST, format!("{ns}/gitrepositories")),
        (Method::DELETE, format!("{ns}/gitrepositories/prod")),
    ])
}

/// What one request was answered.
struct Answer {
    status: StatusCode,
    streaming: bool,
    body: Vec<u8>,
}

/// Sends one request with a deadline; a hang is a failure.
fn send(method: Method, path: &str, query: &str) -> Result<Answer, TestCaseError> {
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let body = if method == Method::POST || method == Method::PUT {
        // Bodies are not under test here: an invalid document, refused after the query.
        Body::from("{}")
    } else {
        Body::empty()
    };
    let req = Request::builder()
        .method(method)
        .uri(&uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| TestCaseError::fail(format!("request {uri}: {e}")))?;
    let app = app().clone();
    runtime().block_on(async {
        let resp = tokio::time::timeout(Duration::from_secs(20), app.oneshot(req))
            .await
            .map_err(|_| TestCaseError::fail(format!("{uri}: no answer within 20 s")))?
            .map_err(|e| TestCaseError::fail(format!("{uri}: {e}")))?;
        let status = resp.status();
        let streaming = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/x-ndjson");
        if streaming {
            // A watch streams from the store for as long as the client stays; its
            // status is the answer to the query.
            return Ok(Answer {
                status,
                streaming,
                body: Vec::new(),
            });
        }
        let body = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
            .await
            .map_err(|_| TestCaseError::fail(format!("{uri}: body did not end within 20 s")))?
            .map_err(|e| TestCaseError::fail(format!("{uri}: body: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status,
            streaming,
            body,
        })
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Any query on any route: answered, never with a 500 (a bug) or a hang; refusals
    /// are `Status` objects with the same code.
    #[test]
    fn arbitrary_queries_are_answered(r in route(), q in query()) {
        let (method, path) = r;
        let a = send(method, &path, &q)?;
        prop_assert_ne!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}?{}", path, q);
        if !a.status.is_success() && !a.streaming {
            let status: serde_json::Value = serde_json::from_slice(&a.body).map_err(|e| {
                TestCaseError::fail(format!(
                    "{path}?{q}: {e}: {:?}",
                    String::from_utf8_lossy(&a.body)
                ))
            })?;
            prop_assert_eq!(&status["kind"], "Status");
            prop_assert_eq!(status["code"].as_u64(), Some(u64::from(a.status.as_u16())));
        }
    }
}

/// Values each route must refuse with 400 before touching the store.
#[test]
fn bad_values_are_refused_with_400() {
    let t = format!("{API_BASE}/namespaces/default/topologies/wc");
    let logs = format!("{t}/tasks/default.wc.count.0.abcdef12.1a2b3c4d/logs");
    for (path, query) in [
        (t.clone(), "watch=true&resourceVersion=abc"),
        (t.clone(), "watch=true&resourceVersion=-5"),
        (
            t.clone(),
            "watch=true&resourceVersion=99999999999999999999999",
        ),
        (format!("{t}/history"), "limit=0"),
        (format!("{t}/history"), "limit=-1"),
        (format!("{t}/history"), "limit=18446744073709551616"),
        (format!("{t}/history"), "limit=%ff"),
        (logs.clone(), "stream=stdin"),
        (logs.clone(), "offset=-2"),
        (logs.clone(), "offset=-9223372036854775809"),
        (logs.clone(), "offset=1e3"),
        (logs.clone(), "length=-1"),
        (logs, "length=18446744073709551616"),
    ] {
        let a = send(Method::GET, &path, query).expect("answered");
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}?{query}");
    }
}

//! Query strings into the API's public query types, as axum's `Query` extracts them. (The
//! whole router with every route is driven by `controller/tests/query_fuzz.rs`.)
#![no_main]

use axum::extract::Query;
use axum::http::Uri;
use concord_controller::observe::{LogQuery, TraceQuery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/x?{text}").parse::<Uri>() else {
        return;
    };
    let _ = Query::<LogQuery>::try_from_uri(&uri);
    let _ = Query::<TraceQuery>::try_from_uri(&uri);
});

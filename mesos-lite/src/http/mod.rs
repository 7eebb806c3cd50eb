//! HTTP routing, libprocess style.

use std::sync::Arc;

use axum::Router;

use crate::master::Shared;

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().with_state(shared)
}

//! Named readiness checks other components report into, shown by `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Shared, cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<String, Result<(), String>>>>,
}

impl Readiness {
    /// Records the state of one check.
    pub fn set(&self, name: &str, state: Result<(), String>) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.insert(name.to_owned(), state);
        }
    }

    /// All checks, by name.
    pub fn snapshot(&self) -> Vec<(String, Result<(), String>)> {
        match self.checks.lock() {
            Ok(checks) => checks.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }
}

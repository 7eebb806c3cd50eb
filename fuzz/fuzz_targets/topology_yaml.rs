//! Topology documents as `concord apply`, the API and the GitOps syncer parse them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = concord_schemas::parse_yaml(data, "fuzz.yaml");
    let _ = concord_schemas::parse_json(data, "fuzz.json");
});

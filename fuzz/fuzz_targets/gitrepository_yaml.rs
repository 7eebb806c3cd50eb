//! A GitRepository body as the API decodes it: the untyped check, then the typed decode.
#![no_main]

use concord_schemas::gitops::GitRepository;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if concord_schemas::check_yaml(data, "body").is_ok()
        && let Ok(repo) = serde_yaml_ng::from_slice::<GitRepository>(data)
    {
        let _ = repo.validate();
    }
    let _ = serde_json::from_slice::<GitRepository>(data);
});

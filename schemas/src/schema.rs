//! The JSON Schema of the `Topology` resource, generated from the Rust types with
//! schemars.
//!
//! The schema uses JSON Schema **draft-07**: yaml-language-server (VS Code's YAML
//! extension, and the editors using it) ships draft-07 support and warns that "Draft
//! 2020-12 schemas are not yet fully supported" (redhat-developer/yaml-language-server#856).
//!
//! It is checked in as `schemas/json/topology.schema.json` so editors can use it through
//! yaml-language-server's `# yaml-language-server: $schema=...` comment; a test fails when
//! the file is stale. Regenerate with `UPDATE_SCHEMAS=1 cargo test -p concord-schemas`.

use crate::topology::Topology;

/// `$id` of the topology schema.
pub const TOPOLOGY_SCHEMA_ID: &str = "https://concord.io/schemas/v1alpha1/topology.schema.json";

/// Path of the checked-in schema, relative to the `schemas/` crate directory.
pub const TOPOLOGY_SCHEMA_FILE: &str = "json/topology.schema.json";

/// The JSON Schema (draft-07) of a `Topology` document, with `$id`, a title and
/// descriptions from the types' doc comments. Objects that reject unknown fields carry
/// `additionalProperties: false`.
pub fn topology_json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Topology>();
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("$id".to_owned(), TOPOLOGY_SCHEMA_ID.into());
        object.insert("title".to_owned(), "Concord Topology".into());
    }
    value
}

/// The schema as written to [`TOPOLOGY_SCHEMA_FILE`]: pretty JSON and a trailing newline.
pub fn topology_json_schema_text() -> String {
    let mut text =
        serde_json::to_string_pretty(&topology_json_schema()).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(TOPOLOGY_SCHEMA_FILE)
    }

    #[test]
    fn checked_in_schema_is_current() {
        let generated = topology_json_schema_text();
        let path = schema_path();
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).expect("write schema");
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{} is stale; regenerate it with `UPDATE_SCHEMAS=1 cargo test -p concord-schemas` \
             and commit the result",
            path.display()
        );
    }

    #[test]
    fn schema_has_id_title_and_rejects_unknown_fields() {
        let schema = topology_json_schema();
        assert_eq!(schema["$id"], TOPOLOGY_SCHEMA_ID);
        assert_eq!(schema["title"], "Concord Topology");
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schema["additionalProperties"], false);
        let defs = schema["definitions"].as_object().expect("definitions");
        for name in [
            "ObjectMeta",
            "TopologySpec",
            "OperatorSpec",
            "Resources",
            "Input",
            "UpdateStrategy",
            "Placement",
            "RestartBackoff",
            "ProcessRuntime",
            "BuiltinRuntime",
            "Artifact",
        ] {
            assert_eq!(
                defs[name]["additionalProperties"], false,
                "{name} should reject unknown fields"
            );
        }
        let builtin_names: Vec<&str> = defs["BuiltinRuntime"]["properties"]["name"]["enum"]
            .as_array()
            .expect("enum of builtin names")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            builtin_names,
            crate::validate::BUILTIN_OPERATORS,
            "the schema's builtin enum (topology.rs) must list BUILTIN_OPERATORS"
        );
        assert_eq!(
            schema["properties"]["apiVersion"]["const"],
            crate::API_VERSION
        );
        assert_eq!(schema["properties"]["kind"]["const"], crate::KIND);
        let op = &defs["OperatorSpec"];
        assert!(
            op["properties"]["instances"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("instances")),
            "descriptions come from doc comments: {op}"
        );
    }
}

//! Property tests over generated valid topologies: they validate, survive YAML and JSON
//! round trips unchanged (so `concord get -o yaml | concord apply -f -` is a no-op),
//! normalisation is idempotent, and a spec planned against itself is empty.

use std::collections::{BTreeMap, BTreeSet};

use concord_schemas::{
    Artifact, BUILTIN_OPERATORS, BuiltinRuntime, Delivery, Input, MAX_INSTANCES, ObjectMeta,
    OperatorSpec, Partitioning, Placement, ProcessRuntime, Resources, RestartBackoff, Runtime,
    Topology, TopologySpec, UpdateStrategy, normalize, parse_json, parse_yaml, plan, template_hash,
    validate,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;

fn label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,10}[a-z0-9])?"
}

/// Printable text including characters YAML treats specially.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        select(vec![
            "",
            "yes",
            "no",
            "on",
            "off",
            "true",
            "null",
            "~",
            "1",
            "0x1F",
            "1e3",
            "- a",
            "a: b",
            "#x",
            "'q'",
            "\"dq\"",
            " lead",
            "trail ",
            "multi\nline",
            "tab\there",
            "*ref",
            "&a",
            "!tag",
            "%",
            "@",
            "`",
            "{",
            "[",
            "---",
            "...",
            "é✓",
        ])
        .prop_map(str::to_owned),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e12f64..1e12).prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            btree_map("[a-zA-Z][a-zA-Z0-9_]{0,5}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn runtime() -> impl Strategy<Value = Runtime> {
    // The Kafka operators need their own configuration (checked in validate's tests);
    // the generated configs are arbitrary maps.
    let names: Vec<&str> = BUILTIN_OPERATORS
        .iter()
        .copied()
        .filter(|n| !n.starts_with("kafka-"))
        .collect();
    let builtin = select(names).prop_map(|name| {
        Runtime::Builtin(BuiltinRuntime {
            name: name.to_owned(),
        })
    });
    let artifact = (
        select(vec![
            "file:///opt/op.py",
            "https://example.com/op.tar.gz",
            "http://h:8080/x.zip",
            "/abs/path/bin",
        ]),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of("[a-z]{1,6}(/[a-z]{1,4})?"),
    )
        .prop_map(|(uri, extract, executable, output_file)| Artifact {
            uri: uri.to_owned(),
            extract,
            executable,
            output_file,
        });
    let process = (
        "[a-z][a-z0-9./_-]{0,10}",
        vec(text().prop_filter("no NUL", |s| !s.contains('\0')), 0..4),
        vec(artifact, 0..3),
    )
        .prop_map(|(command, args, artifacts)| {
            Runtime::Process(ProcessRuntime {
                command,
                args,
                artifacts,
            })
        });
    prop_oneof![builtin, process]
}

fn env() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        "[A-Za-z_][A-Za-z0-9_]{0,8}".prop_filter("reserved prefix", |n| {
            let upper = n.to_ascii_uppercase();
            !upper.starts_with("CONCORD_") && !upper.starts_with("MESOS_")
        }),
        text().prop_filter("no NUL", |s| !s.contains('\0')),
        0..4,
    )
}

/// One operator without name and inputs (filled in by [`topology`]).
fn operator() -> impl Strategy<Value = OperatorSpec> {
    (
        (
            0..=MAX_INSTANCES,
            runtime(),
            btree_map("[a-zA-Z][a-zA-Z0-9]{0,6}", json_value(), 0..4),
            env(),
        ),
        (
            0.01f64..16.0,
            1.0f64..4096.0,
            prop_oneof![Just(0.0), 0.0f64..1000.0],
            btree_set("[a-z]([a-z0-9-]{0,6}[a-z0-9])?", 0..3),
        ),
        (
            (0u32..4, 0u32..4),
            any::<bool>(),
            btree_map("[a-z]{1,4}", "[a-z0-9]{1,4}", 0..3),
        ),
        (
            (0.1f64..10.0, 1.0f64..4.0, 0.0f64..100.0, 1.0f64..1000.0),
            1u32..10_000,
        ),
    )
        .prop_map(
            |(
                (instances, runtime, config, env),
                (cpus, mem, disk, ports),
                ((surge, unavailable), one_per_host, attributes),
                ((initial, factor, extra, reset), deadline),
            )| OperatorSpec {
                name: String::new(),
                instances,
                runtime,
                config,
                env,
                resources: Resources {
                    cpus,
                    mem,
                    disk,
                    ports: ports.into_iter().collect(),
                },
                inputs: Vec::new(),
                update_strategy: UpdateStrategy {
                    max_surge: if surge == 0 && unavailable == 0 {
                        1
                    } else {
                        surge
                    },
                    max_unavailable: unavailable,
                },
                placement: Placement {
                    one_instance_per_host: one_per_host,
                    require_attributes: attributes,
                },
                restart_backoff: RestartBackoff {
                    initial_seconds: initial,
                    factor,
                    max_seconds: initial + extra,
                    reset_after_seconds: reset,
                },
                progress_deadline_seconds: deadline,
                on_error: Default::default(),
            },
        )
}

/// A valid topology: operator `i` may only read from operators before it, so the graph is
/// acyclic and operator 0 is a source.
fn topology() -> impl Strategy<Value = Topology> {
    (
        (
            label(),
            proptest::option::of(label()),
            btree_map(
                "[a-z]{1,5}(\\.[a-z]{1,3}/[a-z]{1,4})?",
                "[a-zA-Z0-9]{0,5}",
                0..3,
            ),
            btree_map("[a-z]{1,6}", text(), 0..3),
        ),
        (proptest::option::of(1i64..1000), any::<bool>()),
        "[a-z]{1,3}",
        vec(
            (
                operator(),
                vec(
                    (
                        any::<bool>(),
                        select(vec![
                            Partitioning::Shuffle,
                            Partitioning::Key,
                            Partitioning::Broadcast,
                        ]),
                    ),
                    0..6,
                ),
            ),
            1..6,
        ),
    )
        .prop_map(
            |((name, namespace, labels, annotations), (generation, at_least_once), prefix, ops)| {
                let names: Vec<String> = (0..ops.len()).map(|i| format!("{prefix}-{i}")).collect();
                let operators = ops
                    .into_iter()
                    .enumerate()
                    .map(|(i, (mut op, edges))| {
                        op.name = names[i].clone();
                        let mut seen = BTreeSet::new();
                        op.inputs = edges
                            .into_iter()
                            .enumerate()
                            .filter(|&(j, (take, _))| take && j < i)
                            .filter(|&(j, _)| seen.insert(j))
                            .map(|(j, (_, partitioning))| Input {
                                from: names[j].clone(),
                                partitioning,
                            })
                            .collect();
                        op
                    })
                    .collect();
                Topology {
                    api_version: concord_schemas::API_VERSION.to_owned(),
                    kind: concord_schemas::KIND.to_owned(),
                    metadata: ObjectMeta {
                        name,
                        namespace: namespace.unwrap_or_else(|| "default".to_owned()),
                        labels,
                        annotations,
                        generation,
                        ..ObjectMeta::default()
                    },
                    spec: TopologySpec {
                        operators,
                        delivery: if at_least_once {
                            Delivery::AtLeastOnce
                        } else {
                            Delivery::AtMostOnce
                        },
                    },
                    status: None,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_topologies_are_valid(t in topology()) {
        prop_assert_eq!(validate(&t), Ok(()));
    }

    #[test]
    fn yaml_round_trip_is_lossless(t in topology()) {
        let yaml = serde_yaml_ng::to_string(&t).expect("serialise");
        let parsed = parse_yaml(yaml.as_bytes(), "gen.yaml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n---\n{yaml}")))?;
        prop_assert_eq!(parsed.len(), 1);
        prop_assert_eq!(&parsed[0], &t, "YAML:\n{}", yaml);
        for (a, b) in parsed[0].spec.operators.iter().zip(&t.spec.operators) {
            prop_assert_eq!(template_hash(a), template_hash(b));
        }
    }

    #[test]
    fn multi_document_yaml_round_trip(a in topology(), b in topology()) {
        let yaml = format!(
            "{}---\n{}",
            serde_yaml_ng::to_string(&a).expect("serialise"),
            serde_yaml_ng::to_string(&b).expect("serialise")
        );
        let parsed = parse_yaml(yaml.as_bytes(), "gen.yaml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n---\n{yaml}")))?;
        prop_assert_eq!(parsed, vec![a, b]);
    }

    #[test]
    fn json_round_trip_is_lossless(t in topology()) {
        let json = serde_json::to_vec(&t).expect("serialise");
        let parsed = parse_json(&json, "body")
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, t);
    }

    #[test]
    fn normalisation_is_idempotent_and_planning_against_itself_is_empty(t in topology()) {
        let mut once = t.clone();
        normalize(&mut once);
        let mut twice = once.clone();
        normalize(&mut twice);
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(&once, &t, "generated topologies are already normal");
        let p = plan(Some(&t.spec), &once.spec);
        prop_assert!(p.is_empty(), "{}", p);
    }
}

#[test]
fn examples_survive_get_then_apply() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples");
    for entry in std::fs::read_dir(dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue; // operator code next to the manifests
        }
        let source = std::fs::read(&path).expect("read");
        let parsed = parse_yaml(&source, "example").expect("valid example");
        for t in parsed {
            let yaml = serde_yaml_ng::to_string(&t).expect("serialise");
            assert_eq!(
                parse_yaml(yaml.as_bytes(), "again").expect("reparse"),
                vec![t.clone()]
            );
            let json = serde_json::to_vec_pretty(&t).expect("serialise");
            assert_eq!(parse_json(&json, "again").expect("reparse"), t);
            assert!(plan(Some(&t.spec), &t.spec).is_empty());
        }
    }
}

#[test]
fn normalize_fills_namespace_and_drops_status() {
    let source = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/examples/wordcount.yaml"),
    )
    .expect("read");
    let mut t = parse_yaml(&source, "wc").expect("valid").remove(0);
    let expected = t.clone();
    t.metadata.namespace = String::new();
    t.status = Some(concord_schemas::TopologyStatus::default());
    t.spec.operators[0].resources.disk = -0.0;
    normalize(&mut t);
    assert_eq!(t, expected);
    assert!(t.spec.operators[0].resources.disk.is_sign_positive());
}

//! Bad YAML and JSON, tried systematically (issue 16): topology and GitRepository
//! documents with aliases, anchors, deep nesting and mutations are parsed or rejected
//! with located errors, without a panic, a stack overflow or an allocation the bytes did
//! not pay for ("billion laughs").
//!
//! CI runs a bounded number of cases per property; `PROPTEST_CASES=100000` runs more
//! (see "Fuzzing" in docs/operations.md). `fuzz/` has the same parsers as cargo-fuzz
//! targets.

use concord_schemas::gitops::GitRepository;
use concord_schemas::{MAX_EXPANDED_BYTES, check_yaml, parse_json, parse_yaml};
use proptest::prelude::*;

/// Counts the bytes each thread has allocated, to check that decoding allocates in
/// proportion to the input and not to what its length fields claim.
mod alloc_meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    /// The test binary's allocator: the system one, metered per thread.
    pub struct Meter;

    fn note(delta: isize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    // SAFETY: every call is forwarded unchanged to `System`; the meter only counts.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Meter {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            note(-(layout.size() as isize));
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size as isize - layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// Runs `f` and returns its result and the most bytes it had allocated at once on
    /// this thread (beyond what was live before).
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        let peak = PEAK.with(Cell::get);
        (out, usize::try_from(peak - base).unwrap_or(0))
    }
}

#[global_allocator]
static METER: alloc_meter::Meter = alloc_meter::Meter;

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

const GITREPO: &str = "apiVersion: concord.io/v1alpha1
kind: GitRepository
metadata: {name: prod, annotations: {a: b}}
spec:
  url: https://git.example.com/streams.git
  branch: main
  path: topologies/
  interval: 30s
  prune: false
  selfHeal: true
  atomic: false
";

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/examples")
        .join(name);
    std::fs::read_to_string(path).expect("read example")
}

/// What the controller does with a GitRepository YAML body: the untyped check, then the
/// typed decode and validation.
fn decode_gitrepo(source: &[u8]) -> Result<(), String> {
    check_yaml(source, "body").map_err(|e| e.to_string())?;
    let repo: GitRepository = serde_yaml_ng::from_slice(source).map_err(|e| e.to_string())?;
    repo.validate().map_err(|e| e.to_string())
}

/// Every rejection names the input and says where, or what.
fn assert_located(
    result: Result<Vec<concord_schemas::Topology>, concord_schemas::SpecErrors>,
) -> Result<(), TestCaseError> {
    if let Err(errors) = result {
        prop_assert!(!errors.is_empty());
        for e in &errors {
            prop_assert_eq!(e.file.as_deref(), Some("fuzz.yaml"));
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

/// A YAML node built from anchors, aliases, flow and block collections.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Alias(u8),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
    Anchored(u8, Box<Node>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        "[a-z0-9 .:-]{0,8}".prop_map(Node::Scalar),
        (0u8..4).prop_map(Node::Alias),
    ];
    leaf.prop_recursive(6, 200, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Node::Seq),
            proptest::collection::vec(("[a-z]{1,6}", inner.clone()), 0..8).prop_map(Node::Map),
            ((0u8..4), inner).prop_map(|(a, n)| Node::Anchored(a, Box::new(n))),
        ]
    })
}

/// Renders `n` in flow style (always valid YAML syntax, anchors permitting).
fn render(n: &Node, out: &mut String) {
    match n {
        Node::Scalar(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Node::Alias(a) => out.push_str(&format!("*a{a}")),
        Node::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push(']');
        }
        Node::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                render(v, out);
            }
            out.push('}');
        }
        Node::Anchored(a, inner) => {
            out.push_str(&format!("&a{a} "));
            render(inner, out);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Random trees of anchors and aliases in the places a topology allows free-form
    /// values (config, labels), and at the top: parsed or rejected, never a panic.
    #[test]
    fn anchors_and_aliases_anywhere(n in node(), m in node()) {
        let (mut a, mut b) = (String::new(), String::new());
        render(&n, &mut a);
        render(&m, &mut b);
        let doc = format!(
            "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {{name: t, labels: {a}}}\n\
             spec:\n  operators:\n    - name: g\n      runtime: {{builtin: {{name: generator}}}}\n      config: {b}\n"
        );
        assert_located(parse_yaml(doc.as_bytes(), "fuzz.yaml"))?;
        assert_located(parse_yaml(a.as_bytes(), "fuzz.yaml"))?;
        let _ = decode_gitrepo(doc.as_bytes());
        let _ = decode_gitrepo(format!("{GITREPO}x: {a}\n").as_bytes());
    }

    /// Examples with bytes inserted, removed or replaced (YAML punctuation included).
    #[test]
    fn mutated_documents(
        which in 0usize..4,
        position in any::<usize>(),
        insert in "[\\-:{}\\[\\],&*!|>'\"#%@` \n\ta-z0-9]{0,6}",
        delete in 0usize..8,
    ) {
        let source = match which {
            0 => example("wordcount.yaml"),
            1 => example("clickfraud.yaml"),
            2 => example("clickfraud-kafka.yaml"),
            _ => GITREPO.to_owned(),
        };
        let bytes = source.as_bytes();
        let at = position % bytes.len();
        let end = (at + delete).min(bytes.len());
        let mut mutated = bytes[..at].to_vec();
        mutated.extend_from_slice(insert.as_bytes());
        mutated.extend_from_slice(&bytes[end..]);
        assert_located(parse_yaml(&mutated, "fuzz.yaml"))?;
        let _ = decode_gitrepo(&mutated);
        if let Ok(v) = serde_json::to_vec(&serde_yaml_ng::from_slice::<serde_json::Value>(&mutated).unwrap_or_default()) {
            let _ = parse_json(&v, "body");
        }
    }

    /// Arbitrary bytes into every parser.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        assert_located(parse_yaml(&bytes, "fuzz.yaml"))?;
        let _ = parse_json(&bytes, "fuzz.json");
        let _ = decode_gitrepo(&bytes);
    }

    /// Arbitrary JSON values as a topology body.
    #[test]
    fn arbitrary_json_topologies(v in json_value()) {
        let body = serde_json::to_vec(&v).expect("json");
        if let Err(errors) = parse_json(&body, "body") {
            prop_assert!(!errors.is_empty());
        }
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    const KEYS: &[&str] = &[
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "spec",
        "operators",
        "instances",
        "runtime",
        "builtin",
        "process",
        "command",
        "args",
        "config",
        "inputs",
        "from",
        "partitioning",
        "resources",
        "cpus",
        "mem",
        "ports",
        "env",
        "labels",
        "annotations",
        "delivery",
        "updateStrategy",
        "maxSurge",
        "maxUnavailable",
        "status",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
        Just(json!(u64::MAX)),
        Just(json!("concord.io/v1alpha1")),
        Just(json!("Topology")),
        Just(json!("generator")),
        "[a-z0-9-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec(
                (proptest::sample::select(KEYS).prop_map(String::from), inner),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A document whose list `x` has `items` entries and whose list `y` has `aliases`
/// aliases to it: input grows linearly, expansion quadratically.
fn list_aliases(items: usize, aliases: usize) -> String {
    format!(
        "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {{name: x}}\nspec:\n  operators:\n    \
         - name: g\n      runtime: {{builtin: {{name: generator}}}}\n      config:\n        x: &a [{}]\n        y: [{}]\n",
        vec!["1"; items].join(","),
        vec!["*a"; aliases].join(",")
    )
}

/// Regression (issue 16): 15 KB of aliases to a 3000-item list took 1.6 s and 9 million
/// nodes; 700 KB would have taken hours and exhausted memory. The expansion budget stops
/// it early with a clear error.
#[test]
fn aliases_to_a_long_list_are_bounded() {
    for (items, aliases) in [(3000, 3000), (150_000, 150_000)] {
        let doc = list_aliases(items, aliases);
        let (result, peak) = alloc_meter::peak(|| parse_yaml(doc.as_bytes(), "laughs.yaml"));
        let errors = result.expect_err("too much expansion");
        assert!(errors.to_string().contains("aliases"), "{errors}");
        assert!(peak < 4 * MAX_EXPANDED_BYTES, "{peak} bytes allocated");
        let (result, peak) = alloc_meter::peak(|| check_yaml(doc.as_bytes(), "body"));
        assert!(result.is_err());
        assert!(peak < 4 * MAX_EXPANDED_BYTES, "{peak} bytes allocated");
    }
    // A few aliases are still fine.
    assert!(parse_yaml(list_aliases(10, 10).as_bytes(), "ok.yaml").is_ok());
}

/// Regression (issue 16): aliases to one long string copied it once per alias (90 KB of
/// input became 100 MB; 1 MiB could become 35 GB), in topologies and in GitRepository
/// bodies, whose typed decode had no check at all.
#[test]
fn aliases_to_a_long_string_are_bounded() {
    let long = "x".repeat(400_000);
    let mut annotations = format!("    a0: &s {long}\n");
    for i in 1..40_000 {
        annotations.push_str(&format!("    a{i}: *s\n"));
    }
    let topology = format!(
        "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata:\n  name: x\n  annotations:\n{annotations}"
    );
    let (result, peak) = alloc_meter::peak(|| parse_yaml(topology.as_bytes(), "laughs.yaml"));
    assert!(
        result
            .expect_err("too much")
            .to_string()
            .contains("aliases")
    );
    assert!(peak < 4 * MAX_EXPANDED_BYTES, "{peak} bytes allocated");
    let gitrepo = GITREPO.replace(
        "metadata: {name: prod, annotations: {a: b}}",
        &format!("metadata:\n  name: prod\n  annotations:\n{annotations}"),
    );
    let (result, peak) = alloc_meter::peak(|| decode_gitrepo(gitrepo.as_bytes()));
    assert!(result.expect_err("too much").contains("aliases"));
    assert!(peak < 4 * MAX_EXPANDED_BYTES, "{peak} bytes allocated");
}

/// The classic billion laughs (nine levels of nine aliases) is refused.
#[test]
fn billion_laughs_is_refused() {
    let mut doc = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..10 {
        let prev = format!("*a{}", level - 1);
        doc.push_str(&format!(
            "a{level}: &a{level} [{}]\n",
            [prev.as_str(); 9].join(",")
        ));
    }
    let (result, peak) = alloc_meter::peak(|| parse_yaml(doc.as_bytes(), "laughs.yaml"));
    assert!(result.is_err());
    assert!(peak < 4 * MAX_EXPANDED_BYTES, "{peak} bytes allocated");
    assert!(decode_gitrepo(doc.as_bytes()).is_err());
}

/// Nesting deeper than the parsers' recursion limits is an error, not a stack overflow.
#[test]
fn deep_nesting_is_rejected() {
    let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_yaml(flow.as_bytes(), "deep.yaml").is_err());
    assert!(parse_json(flow.as_bytes(), "deep.json").is_err());
    assert!(decode_gitrepo(flow.as_bytes()).is_err());
    let maps = format!("{}1{}", "{a: ".repeat(50_000), "}".repeat(50_000));
    assert!(parse_yaml(maps.as_bytes(), "deep.yaml").is_err());
    assert!(check_yaml(maps.as_bytes(), "deep.yaml").is_err());
    let block: String = (0..5_000)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect();
    assert!(parse_yaml(block.as_bytes(), "deep.yaml").is_err());
    let json = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    assert!(parse_json(json.as_bytes(), "deep.json").is_err());
}

/// Regression (issue 16): 250 KB of `{a: ` took libyaml 8 s (release) to scan, quadratic
/// in the depth, before serde_yaml_ng's recursion limit could refuse it; deep flow
/// nesting is now refused before parsing. Brackets in quotes and comments do not count.
#[test]
fn deep_flow_nesting_is_refused_before_parsing() {
    let maps = format!("{}1{}", "{a: ".repeat(50_000), "}".repeat(50_000));
    let errors = parse_yaml(maps.as_bytes(), "deep.yaml").expect_err("too deep");
    assert!(
        errors.to_string().contains("nested more than 128"),
        "{errors}"
    );
    let errors = check_yaml(maps.as_bytes(), "body").expect_err("too deep");
    assert!(
        errors.to_string().contains("nested more than 128"),
        "{errors}"
    );
    // 200 open brackets inside strings and comments are text, not nesting.
    let open = "[{".repeat(100);
    let doc = example("wordcount.yaml").replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations: {{a: \"{open}\", b: '{open}'}} # {open}\n"),
        1,
    );
    parse_yaml(doc.as_bytes(), "quoted.yaml").expect("valid");
}

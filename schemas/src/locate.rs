//! Finds the line and column of a field path (`spec.operators[2].inputs[0].from`) inside
//! a YAML document, so semantic errors found after parsing can point at the text too.
//!
//! serde_yaml_ng exposes positions only on errors, so the document is walked again with a
//! seed that fails on purpose once it reaches the target node: the error then carries that
//! node's position. When the path does not exist in the text (a defaulted field), the
//! position of the deepest existing parent is returned.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

const FOUND: &str = "\u{0}concord-locate-found";
const PARENT: &str = "\u{0}concord-locate-parent";

/// 1-based `(line, column)` of `path` in document number `doc` (0-based, counting every
/// document of the stream) of `source`, if it can be found.
pub(crate) fn locate(source: &str, doc: usize, path: &str) -> Option<(usize, usize)> {
    let document = serde_yaml_ng::Deserializer::from_str(source).nth(doc)?;
    let seed = Seek { rest: path };
    match seed.deserialize(document) {
        Ok(()) => None,
        Err(err) => {
            let message = err.to_string();
            if message.contains(FOUND) || message.contains(PARENT) {
                err.location().map(|l| (l.line(), l.column()))
            } else {
                None
            }
        }
    }
}

/// 1-based `(line, column)` of `path` in the JSON text `source`, if it can be found. The
/// position is where serde_json stopped reading the node (its end for scalars).
pub(crate) fn locate_json(source: &str, path: &str) -> Option<(usize, usize)> {
    let mut deserializer = serde_json::Deserializer::from_str(source);
    match (Seek { rest: path }).deserialize(&mut deserializer) {
        Ok(()) => None,
        Err(err) => {
            let message = err.to_string();
            if (message.contains(FOUND) || message.contains(PARENT)) && err.line() > 0 {
                Some((err.line(), err.column()))
            } else {
                None
            }
        }
    }
}

/// Walks down `rest` (a path in serde_path_to_error syntax).
struct Seek<'p> {
    rest: &'p str,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.rest.is_empty() || self.rest == "." {
            return deserializer.deserialize_any(Found);
        }
        deserializer.deserialize_any(SeekVisitor { rest: self.rest })
    }
}

/// Fails on whatever node it is given; the deserializer attaches the node's position.
struct Found;

impl<'de> Visitor<'de> for Found {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

struct SeekVisitor<'p> {
    rest: &'p str,
}

impl<'de> Visitor<'de> for SeekVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or sequence")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let rest = self.rest.strip_prefix('.').unwrap_or(self.rest);
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            let key = match key {
                serde_yaml_ng::Value::String(s) => s,
                other => match serde_yaml_ng::to_string(&other) {
                    Ok(s) => s.trim_end().to_owned(),
                    Err(_) => String::new(),
                },
            };
            if let Some(after) = rest.strip_prefix(key.as_str())
                && (after.is_empty() || after.starts_with('.') || after.starts_with('['))
            {
                return map.next_value_seed(Seek { rest: after });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(PARENT))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let target = self
            .rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .and_then(|(n, after)| n.parse::<usize>().ok().map(|n| (n, after)));
        if let Some((n, after)) = target {
            let mut i = 0;
            while i < n {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Err(de::Error::custom(PARENT));
                }
                i += 1;
            }
            if seq.next_element_seed(Seek { rest: after })?.is_some() {
                return Ok(());
            }
        }
        Err(de::Error::custom(PARENT))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(PARENT))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(PARENT))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(PARENT))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(PARENT))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(PARENT))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(PARENT))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(PARENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
a: 1
spec:
  operators:
    - name: x
    - name: y
      inputs:
        - from: z
---
other: {k: v}
";

    #[test]
    fn finds_nodes_and_falls_back_to_parents() {
        assert_eq!(locate(DOC, 0, "a"), Some((1, 4)));
        assert_eq!(locate(DOC, 0, "spec.operators[1].name"), Some((5, 13)));
        assert_eq!(
            locate(DOC, 0, "spec.operators[1].inputs[0].from"),
            Some((7, 17))
        );
        // Missing leaf: the mapping that should hold it.
        assert_eq!(locate(DOC, 0, "spec.operators[0].instances"), Some((4, 7)));
        assert_eq!(locate(DOC, 1, "other.k"), Some((9, 12)));
        assert_eq!(locate(DOC, 5, "a"), None);
    }

    #[test]
    fn finds_json_nodes() {
        let json = "{\n  \"spec\": {\"operators\": [\n    {\"name\": \"a\"},\n    {\"name\": \"b\"}\n  ]}\n}";
        assert_eq!(locate_json(json, "spec.operators[1].name"), Some((4, 16)));
        assert_eq!(locate_json(json, "spec.operators[1].inputs"), Some((4, 17)));
        assert_eq!(locate_json("not json", "a"), None);
    }
}

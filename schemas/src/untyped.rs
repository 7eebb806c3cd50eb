//! First pass over a YAML document: read it as an untyped value, rejecting duplicate
//! mapping keys at the position of the duplicate (serde would report the position of the
//! enclosing mapping), custom YAML tags, and documents whose aliases expand beyond
//! [`MAX_EXPANDED_BYTES`].

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_yaml_ng::{Mapping, Number, Value};

/// How much a YAML stream may expand to when read, counting [`NODE_COST`] per node plus
/// the bytes of every string. Aliases (`*name`) repeat what they name, so a 20 KB input
/// of aliases to a large list or string can expand to gigabytes ("billion laughs");
/// serde_yaml_ng bounds only the number of alias jumps, not what each one copies. An
/// input of [`crate::MAX_DOCUMENT_BYTES`] without aliases stays well inside.
pub const MAX_EXPANDED_BYTES: usize = 64 << 20;

/// Budget units charged per node (about what a node costs in memory).
const NODE_COST: usize = 64;

/// The expansion budget of one YAML stream, shared by its documents.
pub(crate) struct Budget(Cell<usize>);

impl Budget {
    /// A full budget of [`MAX_EXPANDED_BYTES`].
    pub(crate) fn new() -> Self {
        Self(Cell::new(MAX_EXPANDED_BYTES))
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.0.get().checked_sub(NODE_COST + bytes) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the YAML expands to more than {} MiB when its aliases (`*name`) are \
                 resolved; write the repeated values out or use fewer aliases",
                MAX_EXPANDED_BYTES >> 20
            ))),
        }
    }
}

/// Reads one document as a [`Value`]; `Value::Null` for an empty document. What it
/// expands to is charged to `budget`.
pub(crate) fn read_document(
    document: serde_yaml_ng::Deserializer<'_>,
    budget: &Budget,
) -> Result<Value, serde_yaml_ng::Error> {
    Strict(budget).deserialize(document)
}

#[derive(Clone, Copy)]
struct Strict<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor(self.0))
    }
}

struct StrictVisitor<'b>(&'b Budget);

impl<'de> Visitor<'de> for StrictVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(Number::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(Number::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(Number::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict(self.0).deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict(self.0))? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut out = Mapping::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(Strict(self.0))? {
            let text = match &key {
                Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other)
                    .map(|s| s.trim_end().to_owned())
                    .unwrap_or_default(),
            };
            if !seen.insert(text.clone()) {
                // Fail while reading the value, so the error carries its position.
                return map.next_value_seed(Fail(format!(
                    "duplicate key `{text}`: it already appears earlier in this mapping"
                )));
            }
            let value = map.next_value_seed(Strict(self.0))?;
            out.insert(key, value);
        }
        Ok(Value::Mapping(out))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(
            "custom YAML tags (`!name`) are not supported; write mappings instead, \
             e.g. `runtime: {builtin: {name: map}}`",
        ))
    }
}

/// Fails on the node it is given, with a message; the deserializer attaches the node's
/// position.
struct Fail(String);

impl<'de> DeserializeSeed<'de> for Fail {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fail {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
}

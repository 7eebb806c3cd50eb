//! Serde helpers implementing the stout JSON ⇄ protobuf rules (wire reference §3).
//!
//! Mesos writes plain JSON numbers and booleans but *accepts* numeric strings and
//! `"true"`/`"false"`, and treats `null` as "unset". These helpers make our
//! deserialisers equally tolerant, so a message Mesos (or another client) accepts is
//! never rejected by us.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Standard alphabet; writes padding, accepts input with or without it (as stout does).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A protobuf `bytes` field: base64 (standard, padded) on the wire, raw bytes in memory.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Wraps raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Bytes(bytes.into())
    }

    /// The raw bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The canonical (standard, padded) base64 text of these bytes.
    pub fn to_base64(&self) -> String {
        B64.encode(&self.0)
    }

    /// Decodes base64 text (standard alphabet, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, base64::DecodeError> {
        B64.decode(text.as_bytes()).map(Bytes)
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({})", self.to_base64())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl From<&str> for Bytes {
    fn from(v: &str) -> Self {
        Bytes(v.as_bytes().to_vec())
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Bytes::from_base64(text.trim())
            .map_err(|e| de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// Numbers Mesos accepts either as JSON numbers or as numeric strings.
pub trait Lenient: Sized {
    /// Converts from a JSON number given as i64.
    fn from_i64(v: i64) -> Option<Self>;
    /// Converts from a JSON number given as u64.
    fn from_u64(v: u64) -> Option<Self>;
    /// Converts from a JSON number given as f64.
    fn from_f64(v: f64) -> Option<Self>;
    /// Parses a numeric string.
    fn parse(s: &str) -> Option<Self>;
    /// What to call it in errors.
    const NAME: &'static str;
}

macro_rules! lenient_int {
    ($($t:ty),*) => {$(
        impl Lenient for $t {
            fn from_i64(v: i64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_u64(v: u64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_f64(v: f64) -> Option<Self> {
                // Integral doubles (e.g. `5050.0`) are accepted; anything else is not.
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 {
                    Some(v as $t)
                } else {
                    None
                }
            }
            fn parse(s: &str) -> Option<Self> { s.trim().parse().ok() }
            const NAME: &'static str = stringify!($t);
        }
    )*};
}
lenient_int!(i32, u32, i64, u64);

impl Lenient for f64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            other => other.parse().ok(),
        }
    }
    const NAME: &'static str = "f64";
}

impl Lenient for bool {
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
    const NAME: &'static str = "bool";
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient> Visitor<'de> for LenientVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} (JSON value or string)", T::NAME)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        T::parse(if v { "true" } else { "false" })
            .map(Some)
            .ok_or_else(|| E::custom(format!("expected {}, got a boolean", T::NAME)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::from_i64(v)
            .map(Some)
            .ok_or_else(|| E::custom(format!("{v} is not a valid {}", T::NAME)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::from_u64(v)
            .map(Some)
            .ok_or_else(|| E::custom(format!("{v} is not a valid {}", T::NAME)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::from_f64(v)
            .map(Some)
            .ok_or_else(|| E::custom(format!("{v} is not a valid {}", T::NAME)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        T::parse(v)
            .map(Some)
            .ok_or_else(|| E::custom(format!("{v:?} is not a valid {}", T::NAME)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Deserialises a number/bool leniently; `null` yields the type's default.
pub fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Lenient + Default,
{
    Ok(d.deserialize_any(LenientVisitor::<T>(PhantomData))?
        .unwrap_or_default())
}

/// Deserialises a boolean whose proto default is `true` (e.g. `CommandInfo.shell`,
/// `URI.extract`): `null` means unset and so yields `true`.
pub fn lenient_default_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(d.deserialize_any(LenientVisitor::<bool>(PhantomData))?
        .unwrap_or(true))
}

/// Deserialises an optional number/bool leniently; `null` yields `None`.
pub fn lenient_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Lenient,
{
    d.deserialize_option(LenientVisitor::<T>(PhantomData))
}

/// Deserialises any value, mapping JSON `null` to the default (protobuf "unset").
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Serialises an `f64` the way stout does: non-finite values as strings.
pub fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}

/// `skip_serializing_if` helper for `false` booleans.
pub fn is_false(v: &bool) -> bool {
    !*v
}

/// Defines a protobuf enum carried by name, with an `Other(String)` fallback so an
/// unknown name (from a newer Mesos) never breaks decoding of the surrounding message.
macro_rules! mesos_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A name this library does not know (kept verbatim, re-serialised as is).
            Other(String),
        }

        impl $name {
            /// The protobuf name as written on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Other(s) => s.as_str(),
                }
            }

            /// Every known variant.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// Whether this is a name this library does not know.
            pub fn is_other(&self) -> bool {
                matches!(self, $name::Other(_))
            }
        }

        impl Default for $name {
            /// The first listed variant (the protobuf zero value where there is one).
            fn default() -> Self {
                $name::ALL[0].clone()
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( $text => $name::$variant, )*
                    other => $name::Other(other.to_string()),
                })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Mesos only writes names; a number (never valid for Mesos) is kept as
                // `Other("<n>")` rather than failing the whole event.
                let v = ::serde_json::Value::deserialize(d)?;
                match v {
                    ::serde_json::Value::String(s) => Ok(s.parse().unwrap_or_else(|e| match e {})),
                    other => Ok($name::Other(other.to_string())),
                }
            }
        }
    };
}
pub(crate) use mesos_enum;

//! How the data types' fields serialize where the derived form is not the output's: addresses,
//! ordered key/value lists, non-finite doubles, bytes. A low layer: the process-context
//! types name these in their `serialize_with`, and nothing here knows those types.

use crate::record::hex;
use serde::{Serialize, Serializer};

/// An address, as a `0x…` string (JSON numbers lose precision past 2^53).
pub fn address<S: Serializer>(addr: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{addr:#x}"))
}

/// Key/value pairs as one map, in their order (a repeated key is repeated).
pub fn key_values<S: Serializer, V: Serialize>(items: &[(String, V)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(items.iter().map(|(k, v)| (k, v)))
}

/// JSON has no NaN or infinity: those are said in a string.
pub fn double<S: Serializer>(d: &f64, s: S) -> Result<S::Ok, S::Error> {
    if d.is_finite() {
        s.serialize_f64(*d)
    } else {
        s.collect_str(d)
    }
}

pub fn bytes<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(b))
}

//! The process context payload: OTEP 4719's `ProcessContext` protobuf message (on the OTLP
//! common and resource messages, declared with prost's derive from the spec's field numbers, so
//! the build needs no protoc), and the rules a publisher keeps for the thread attribute key map.

use prost::Message;
use std::collections::BTreeSet;

/// Readers reject payloads larger than this (OTEP 4719).
pub const OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE: usize = 64 * 1024;
/// Thread records carry the key index in one byte, so at most 256 keys can be named.
pub const OTEL_PROCESS_CTX_MAX_ATTRIBUTE_KEYS: usize = 256;
/// `ProcessContext.attributes` key naming the thread-context layout.
const SCHEMA_VERSION_KEY: &str = "threadlocal.schema_version";
/// The layout written unless the process chose another name for it: the only one readers
/// accept today (OTEP 4947 means to rename it `tls_v1`).
pub const DEFAULT_SCHEMA_VERSION: &str = "tlsdesc_v1_dev";
/// The environment variable that chooses another schema version name for the whole process.
pub const SCHEMA_VERSION_ENV: &str = "OTEL_THREAD_CTX_SCHEMA_VERSION";
/// The longest schema version name accepted.
const MAX_SCHEMA_VERSION_LEN: usize = 64;
/// `ProcessContext.attributes` key whose array value names each thread attribute key index.
const KEY_MAP_KEY: &str = "threadlocal.attribute_key_map";
/// Resource attributes this library fills in when a string-only caller gives none.
const SDK_DEFAULTS: [(&str, &str); 2] = [
    ("telemetry.sdk.name", "otel-thread-ctx"),
    ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
];

/// `ProcessContext { Resource resource = 1; repeated KeyValue attributes = 2; }`
#[derive(Clone, PartialEq, Message)]
pub struct ProcessContext {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<KeyValue>,
}

/// OTLP `Resource { repeated KeyValue attributes = 1; }`
#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// OTLP `KeyValue { string key = 1; AnyValue value = 2; }`
#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// OTLP `AnyValue`, with the kinds the C API takes (OTLP's kvlist and bytes are not among them).
#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5")]
    pub value: Option<any_value::Value>,
}

/// The `AnyValue.value` oneof.
pub mod any_value {
    /// One value kind.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
    }
}

/// OTLP `ArrayValue { repeated AnyValue values = 1; }`
#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// Why a payload was refused. Nothing published is changed when one is returned.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum PayloadError {
    /// A resource attribute has an empty key.
    EmptyResourceKey,
    /// Two resource attributes have the same key.
    DuplicateResourceKey(String),
    /// An entry of the attribute key map is empty (index given).
    EmptyAttributeKey(usize),
    /// The attribute key map names the same key at two indexes (the later index given).
    DuplicateAttributeKey(usize),
    /// The attribute key map has more than 256 entries.
    TooManyAttributeKeys(usize),
    /// A key map names an index differently from the process's key map (the index given).
    KeyMapChanged(usize),
    /// The encoded payload is larger than readers accept (its size given).
    TooLarge(usize),
    /// A process-context attribute has an empty key, repeats a key, or uses the `threadlocal.`
    /// prefix this library writes itself.
    InvalidContextAttribute(String),
    /// A schema version name is empty, longer than 64 bytes, or not printable ASCII.
    InvalidSchemaVersion,
}

/// An attribute.
pub fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

/// String resource attributes, plus this library's SDK name and version where not given.
pub fn string_resource<K: AsRef<str>, V: AsRef<str>>(resource: &[(K, V)]) -> Vec<KeyValue> {
    let mut attrs: Vec<KeyValue> = resource
        .iter()
        .map(|(k, v)| kv(k.as_ref(), string(v.as_ref())))
        .collect();
    for (key, default) in SDK_DEFAULTS {
        if !resource.iter().any(|(k, _)| k.as_ref() == key) {
            attrs.push(kv(key, string(default)));
        }
    }
    attrs
}

/// Checks the rules that hold for any key map on its own: count, empty and duplicate keys.
pub fn check_key_map<S: AsRef<str>>(keys: &[S]) -> Result<(), PayloadError> {
    if keys.len() > OTEL_PROCESS_CTX_MAX_ATTRIBUTE_KEYS {
        return Err(PayloadError::TooManyAttributeKeys(keys.len()));
    }
    match first_bad_key(keys.iter().map(AsRef::as_ref)) {
        Some((i, true)) => Err(PayloadError::EmptyAttributeKey(i)),
        Some((i, false)) => Err(PayloadError::DuplicateAttributeKey(i)),
        None => Ok(()),
    }
}

/// The first key that is empty (`true`) or repeated (`false`), by index.
fn first_bad_key<'a>(keys: impl Iterator<Item = &'a str>) -> Option<(usize, bool)> {
    let mut seen = BTreeSet::new();
    let mut bad = keys.enumerate().filter(|&(_, k)| k.is_empty() || !seen.insert(k));
    bad.next().map(|(i, k)| (i, k.is_empty()))
}

/// The process's one key map after `given` is published over `held`: the longer of the two,
/// which must agree wherever both name an index (records already written name attributes by
/// index, so an index never changes meaning; appending is allowed, and so is giving fewer keys).
pub fn merge_key_maps<S: AsRef<str>>(held: &[String], given: &[S]) -> Result<Vec<String>, PayloadError> {
    check_key_map(given)?;
    if let Some(i) = held.iter().zip(given).position(|(h, g)| h != g.as_ref()) {
        return Err(PayloadError::KeyMapChanged(i));
    }
    Ok(match given.len() > held.len() {
        true => given.iter().map(|k| k.as_ref().to_owned()).collect(),
        false => held.to_vec(),
    })
}

/// Checks a schema version name: 1 to 64 printable ASCII characters (readers compare it with
/// names they know; anything else could only be a mistake, or an attack on a terminal).
pub fn check_schema_version(name: &str) -> Result<(), PayloadError> {
    let printable = name.bytes().all(|b| b.is_ascii_graphic());
    match (1..=MAX_SCHEMA_VERSION_LEN).contains(&name.len()) && printable {
        true => Ok(()),
        false => Err(PayloadError::InvalidSchemaVersion),
    }
}

/// The schema version name from [`SCHEMA_VERSION_ENV`] if it is set and valid, else the default.
pub fn schema_version_from_env() -> String {
    std::env::var(SCHEMA_VERSION_ENV)
        .ok()
        .filter(|v| check_schema_version(v).is_ok())
        .unwrap_or_else(|| DEFAULT_SCHEMA_VERSION.to_owned())
}

/// Encodes the payload exactly as given: the `resource` attributes, the library's
/// `threadlocal.*` entries (`schema` names the record layout) then the caller's own context
/// `attributes`, and the key map. Checks every rule that does not depend on what is already
/// published.
pub fn encode<S: AsRef<str>>(
    resource: &[KeyValue],
    attributes: &[KeyValue],
    key_map: &[S],
    schema: &str,
) -> Result<Vec<u8>, PayloadError> {
    check_key_map(key_map)?;
    match first_bad_key(resource.iter().map(|kv| kv.key.as_str())) {
        Some((_, true)) => return Err(PayloadError::EmptyResourceKey),
        Some((i, false)) => return Err(PayloadError::DuplicateResourceKey(resource[i].key.clone())),
        None => {}
    }
    let bad = |kv: &KeyValue, why: &str| PayloadError::InvalidContextAttribute(format!("{:?}: {why}", kv.key));
    if let Some(kv) = attributes.iter().find(|kv| kv.key.starts_with("threadlocal.")) {
        return Err(bad(kv, "the threadlocal. prefix is reserved for the library"));
    }
    match first_bad_key(attributes.iter().map(|kv| kv.key.as_str())) {
        Some((i, true)) => return Err(bad(&attributes[i], "empty key")),
        Some((i, false)) => return Err(bad(&attributes[i], "given twice")),
        None => {}
    }
    let key_map = key_map.iter().map(|k| AnyValue {
        value: Some(string(k.as_ref())),
    });
    let key_map = any_value::Value::ArrayValue(ArrayValue {
        values: key_map.collect(),
    });
    let mut context_attrs = vec![kv(SCHEMA_VERSION_KEY, string(schema)), kv(KEY_MAP_KEY, key_map)];
    context_attrs.extend_from_slice(attributes);
    let msg = ProcessContext {
        resource: Some(Resource {
            attributes: resource.to_vec(),
        }),
        attributes: context_attrs,
    };
    let len = msg.encoded_len();
    if len > OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE {
        return Err(PayloadError::TooLarge(len));
    }
    Ok(msg.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_strings<S: AsRef<str>>(resource: &[(&str, &str)], key_map: &[S]) -> Result<Vec<u8>, PayloadError> {
        encode(&string_resource(resource), &[], key_map, DEFAULT_SCHEMA_VERSION)
    }

    fn string_of(v: &Option<AnyValue>) -> Option<&str> {
        match v.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn round_trips_resource_schema_and_key_map() {
        let bytes = encode_strings(
            &[("service.name", "svc"), ("telemetry.sdk.language", "dotnet")],
            &["a", "b"],
        )
        .unwrap();
        let msg = ProcessContext::decode(bytes.as_slice()).unwrap();
        let res: Vec<(&str, &str)> = msg
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), string_of(&kv.value).unwrap()))
            .collect();
        assert_eq!(
            res,
            [
                ("service.name", "svc"),
                ("telemetry.sdk.language", "dotnet"),
                ("telemetry.sdk.name", SDK_DEFAULTS[0].1),
                ("telemetry.sdk.version", SDK_DEFAULTS[1].1),
            ]
        );
        assert_eq!(msg.attributes[0].key, SCHEMA_VERSION_KEY);
        assert_eq!(string_of(&msg.attributes[0].value), Some("tlsdesc_v1_dev"));
        assert_eq!(msg.attributes[1].key, KEY_MAP_KEY);
        let Some(any_value::Value::ArrayValue(arr)) = msg.attributes[1].value.as_ref().unwrap().value.as_ref() else {
            panic!("key map is not an array: {:?}", msg.attributes[1]);
        };
        let keys: Vec<_> = arr
            .values
            .iter()
            .map(|v| string_of(&Some(v.clone())).unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn caller_sdk_name_and_version_replace_the_defaults() {
        let bytes = encode_strings(
            &[("telemetry.sdk.name", "x"), ("telemetry.sdk.version", "9")],
            &[] as &[&str],
        )
        .unwrap();
        let msg = ProcessContext::decode(bytes.as_slice()).unwrap();
        let attrs = &msg.resource.unwrap().attributes;
        assert_eq!(attrs.len(), 2);
        assert_eq!(string_of(&attrs[0].value), Some("x"));
        assert_eq!(string_of(&attrs[1].value), Some("9"));
    }

    #[test]
    fn key_map_rules() {
        let many: Vec<String> = (0..257).map(|i| format!("k{i}")).collect();
        assert_eq!(check_key_map(&many[..256]), Ok(()));
        assert_eq!(check_key_map(&many), Err(PayloadError::TooManyAttributeKeys(257)));
        assert_eq!(check_key_map(&["a", ""]), Err(PayloadError::EmptyAttributeKey(1)));
        assert_eq!(
            check_key_map(&["a", "b", "a"]),
            Err(PayloadError::DuplicateAttributeKey(2))
        );
        let held = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            merge_key_maps(&held, &["a", "b", "c"]),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(merge_key_maps(&held, &["a"]), Ok(held.to_vec()));
        assert_eq!(merge_key_maps(&held, &[] as &[&str]), Ok(held.to_vec()));
        assert_eq!(
            merge_key_maps(&held, &["a", "x", "c"]),
            Err(PayloadError::KeyMapChanged(1))
        );
        assert_eq!(merge_key_maps(&held, &["b"]), Err(PayloadError::KeyMapChanged(0)));
    }

    #[test]
    fn resource_rules_and_size_limit() {
        assert_eq!(
            encode_strings(&[("", "v")], &[] as &[&str]),
            Err(PayloadError::EmptyResourceKey)
        );
        assert_eq!(
            encode_strings(&[("k", "1"), ("k", "2")], &[] as &[&str]),
            Err(PayloadError::DuplicateResourceKey("k".into()))
        );
        let big = "x".repeat(OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE);
        assert!(
            matches!(encode_strings(&[("k", big.as_str())], &[] as &[&str]), Err(PayloadError::TooLarge(n)) if n > OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE)
        );
    }

    #[test]
    fn typed_values_round_trip_exactly_without_defaults() {
        use any_value::Value as V;
        let arr = |vals: Vec<V>| {
            V::ArrayValue(ArrayValue {
                values: vals.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
            })
        };
        let resource = vec![
            kv("service.name", V::StringValue("svc".into())),
            kv("flag", V::BoolValue(true)),
            kv("count", V::IntValue(-7)),
            kv("ratio", V::DoubleValue(0.25)),
            kv(
                "tags",
                arr(vec![V::StringValue("a".into()), V::StringValue("b".into())]),
            ),
            kv("ints", arr(vec![V::IntValue(1), V::IntValue(2)])),
            KeyValue {
                key: "empty".into(),
                value: Some(AnyValue { value: None }),
            },
        ];
        let extra = vec![kv(
            "otel.instrumentations",
            arr(vec![V::StringValue("aspnetcore".into())]),
        )];
        let bytes = encode(&resource, &extra, &["k"], DEFAULT_SCHEMA_VERSION).unwrap();
        let msg = ProcessContext::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            msg.resource.unwrap().attributes,
            resource,
            "exactly as given, no SDK defaults"
        );
        assert_eq!(msg.attributes.len(), 3);
        assert_eq!(msg.attributes[0].key, SCHEMA_VERSION_KEY);
        assert_eq!(msg.attributes[1].key, KEY_MAP_KEY);
        assert_eq!(msg.attributes[2], extra[0]);
    }

    #[test]
    fn typed_values_refuse_bad_context_attributes_and_keys() {
        use any_value::Value as V;
        for (attrs, why) in [
            (vec![kv("", V::BoolValue(true))], "empty key"),
            (vec![kv("threadlocal.x", V::BoolValue(true))], "reserved"),
            (
                vec![kv("a", V::BoolValue(true)), kv("a", V::IntValue(1))],
                "given twice",
            ),
        ] {
            assert!(
                matches!(encode(&[], &attrs, &[] as &[&str], DEFAULT_SCHEMA_VERSION), Err(PayloadError::InvalidContextAttribute(m)) if m.contains(why)),
                "{why}"
            );
        }
        assert_eq!(
            encode(
                &[kv("d", V::IntValue(1)), kv("d", V::IntValue(2))],
                &[],
                &[] as &[&str],
                DEFAULT_SCHEMA_VERSION
            ),
            Err(PayloadError::DuplicateResourceKey("d".into()))
        );
        let big = "x".repeat(OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE);
        assert!(matches!(
            encode(
                &[],
                &[kv("big", V::StringValue(big))],
                &[] as &[&str],
                DEFAULT_SCHEMA_VERSION
            ),
            Err(PayloadError::TooLarge(_))
        ));
    }
}

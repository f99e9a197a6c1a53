//! The process context payload: OTEP 4719's `ProcessContext` protobuf message (on the OTLP
//! common and resource messages, declared with prost's derive from the spec's field numbers, so
//! the build needs no protoc), and the rules a publisher keeps for the thread attribute key map.

use crate::status::OtelThreadCtxStatus as Status;
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
/// Resource attributes this library fills in where the caller gives none.
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

/// Appends this library's `telemetry.sdk.name` and `telemetry.sdk.version` where `resource` has
/// no such key (the one place these defaults live; a caller names its language itself).
pub fn with_sdk_defaults(resource: &mut Vec<KeyValue>) {
    for (key, default) in SDK_DEFAULTS {
        if !resource.iter().any(|kv| kv.key == key) {
            resource.push(kv(key, string(default)));
        }
    }
}

/// Checks the rules that hold for any key map on its own: count, empty and duplicate keys.
pub fn check_key_map<S: AsRef<str>>(keys: &[S]) -> Result<(), Status> {
    if keys.len() > OTEL_PROCESS_CTX_MAX_ATTRIBUTE_KEYS {
        return Err(Status::TooManyAttributeKeys);
    }
    bad_key(
        keys.iter().map(AsRef::as_ref),
        Status::EmptyAttributeKey,
        Status::DuplicateAttributeKey,
    )
}

/// `empty` if a key is empty, `repeated` if one is given twice (whichever comes first).
fn bad_key<'a>(mut keys: impl Iterator<Item = &'a str>, empty: Status, repeated: Status) -> Result<(), Status> {
    let mut seen = BTreeSet::new();
    match keys.find(|k| k.is_empty() || !seen.insert(*k)) {
        Some("") => Err(empty),
        Some(_) => Err(repeated),
        None => Ok(()),
    }
}

/// The process's one key map after `given` is published over `held`: the longer of the two,
/// which must agree wherever both name an index (records already written name attributes by
/// index, so an index never changes meaning; appending is allowed, and so is giving fewer keys).
pub fn merge_key_maps<S: AsRef<str>>(held: &[String], given: &[S]) -> Result<Vec<String>, Status> {
    check_key_map(given)?;
    if held.iter().zip(given).any(|(h, g)| h != g.as_ref()) {
        return Err(Status::KeyMapChanged);
    }
    Ok(match given.len() > held.len() {
        true => given.iter().map(|k| k.as_ref().to_owned()).collect(),
        false => held.to_vec(),
    })
}

/// Checks a schema version name: 1 to 64 printable ASCII characters (readers compare it with
/// names they know; anything else could only be a mistake, or an attack on a terminal).
pub fn check_schema_version(name: &str) -> Result<(), Status> {
    let valid = (1..=MAX_SCHEMA_VERSION_LEN).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic());
    valid.then_some(()).ok_or(Status::InvalidSchemaVersion)
}

/// Encodes the payload exactly as given: the `resource` attributes, the library's
/// `threadlocal.*` entries (`schema` names the record layout) then the caller's own context
/// `attributes`, and the key map. Checks every rule that does not depend on what is already
/// published.
pub fn encode<'a, S: AsRef<str>>(
    resource: &'a [KeyValue],
    attributes: &'a [KeyValue],
    key_map: &[S],
    schema: &str,
) -> Result<Vec<u8>, Status> {
    check_key_map(key_map)?;
    let keys = |list: &'a [KeyValue]| list.iter().map(|kv| kv.key.as_str());
    bad_key(keys(resource), Status::EmptyResourceKey, Status::DuplicateResourceKey)?;
    let invalid = Status::InvalidContextAttribute;
    bad_key(keys(attributes), invalid, invalid)?;
    if keys(attributes).any(|k| k.starts_with("threadlocal.")) {
        return Err(invalid);
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
        return Err(Status::PayloadTooLarge);
    }
    Ok(msg.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_strings<S: AsRef<str>>(resource: &[(&str, &str)], key_map: &[S]) -> Result<Vec<u8>, Status> {
        let mut resource: Vec<KeyValue> = resource.iter().map(|(k, v)| kv(k, string(v))).collect();
        with_sdk_defaults(&mut resource);
        encode(&resource, &[], key_map, DEFAULT_SCHEMA_VERSION)
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
        assert_eq!(check_key_map(&many), Err(Status::TooManyAttributeKeys));
        assert_eq!(check_key_map(&["a", ""]), Err(Status::EmptyAttributeKey));
        assert_eq!(check_key_map(&["a", "b", "a"]), Err(Status::DuplicateAttributeKey));
        let held = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            merge_key_maps(&held, &["a", "b", "c"]),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(merge_key_maps(&held, &["a"]), Ok(held.to_vec()));
        assert_eq!(merge_key_maps(&held, &[] as &[&str]), Ok(held.to_vec()));
        assert_eq!(merge_key_maps(&held, &["a", "x", "c"]), Err(Status::KeyMapChanged));
        assert_eq!(merge_key_maps(&held, &["b"]), Err(Status::KeyMapChanged));
    }

    #[test]
    fn resource_rules_and_size_limit() {
        assert_eq!(
            encode_strings(&[("", "v")], &[] as &[&str]),
            Err(Status::EmptyResourceKey)
        );
        assert_eq!(
            encode_strings(&[("k", "1"), ("k", "2")], &[] as &[&str]),
            Err(Status::DuplicateResourceKey)
        );
        let big = "x".repeat(OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE);
        assert_eq!(
            encode_strings(&[("k", big.as_str())], &[] as &[&str]),
            Err(Status::PayloadTooLarge)
        );
    }

    #[test]
    fn typed_values_round_trip_exactly() {
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
        assert_eq!(msg.resource.unwrap().attributes, resource, "exactly as given");
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
            assert_eq!(
                encode(&[], &attrs, &[] as &[&str], DEFAULT_SCHEMA_VERSION),
                Err(Status::InvalidContextAttribute),
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
            Err(Status::DuplicateResourceKey)
        );
        let big = "x".repeat(OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE);
        assert_eq!(
            encode(
                &[],
                &[kv("big", V::StringValue(big))],
                &[] as &[&str],
                DEFAULT_SCHEMA_VERSION
            ),
            Err(Status::PayloadTooLarge)
        );
    }
}

//! The process context payload: the protobuf message OTEP 4719 defines
//! (`opentelemetry.proto.processcontext.v1development.ProcessContext`, built on the OTLP common
//! and resource messages), and the rules a publisher must keep for the thread attribute key map.
//!
//! The message types are declared by hand with prost's derive from the spec's field numbers, so
//! the build needs no protoc.

use prost::Message;

/// Readers reject payloads larger than this (OTEP 4719).
pub const OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE: usize = 64 * 1024;
/// Thread records carry the key index in one byte, so at most 256 keys can be named.
pub const OTEL_PROCESS_CTX_MAX_ATTRIBUTE_KEYS: usize = 256;
/// The thread-context layout this library writes; the only value readers accept today.
pub const SCHEMA_VERSION: &str = "tlsdesc_v1_dev";
/// `ProcessContext.attributes` key naming the thread-context layout.
pub const SCHEMA_VERSION_KEY: &str = "threadlocal.schema_version";
/// `ProcessContext.attributes` key whose array value names each thread attribute key index.
pub const KEY_MAP_KEY: &str = "threadlocal.attribute_key_map";
/// Resource attribute naming the SDK; this library's name when the caller gives none.
pub const SDK_NAME_KEY: &str = "telemetry.sdk.name";
/// Resource attribute with the SDK version; this library's version when the caller gives none.
pub const SDK_VERSION_KEY: &str = "telemetry.sdk.version";
/// Default `telemetry.sdk.name`.
pub const DEFAULT_SDK_NAME: &str = "otel-thread-ctx";
/// Default `telemetry.sdk.version`.
pub const DEFAULT_SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// OTLP `AnyValue { oneof value { ... } }`
#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

/// The `AnyValue.value` oneof.
pub mod any_value {
    /// One of the value kinds OTLP allows.
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
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

/// OTLP `ArrayValue { repeated AnyValue values = 1; }`
#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// OTLP `KeyValueList { repeated KeyValue values = 1; }`
#[derive(Clone, PartialEq, Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
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
    /// An update renames or drops a key index that is already published (the index given).
    KeyMapChanged(usize),
    /// The encoded payload is larger than readers accept (its size given).
    TooLarge(usize),
    /// A value the payload cannot carry: an array inside an array, or a key-value list or
    /// bytes value (the typed API takes strings, booleans, integers, doubles and flat arrays).
    InvalidValue(String),
    /// A process-context attribute (`ProcessContext.attributes`, beside the resource) has an
    /// empty key, repeats a key, or uses the `threadlocal.` prefix this library writes itself.
    InvalidContextAttribute(String),
}

/// Keys of `ProcessContext.attributes` with this prefix are written by the library only
/// (`threadlocal.schema_version`, `threadlocal.attribute_key_map`).
pub const RESERVED_CONTEXT_PREFIX: &str = "threadlocal.";

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

/// Checks the rules that hold for any key map on its own: count, empty and duplicate keys.
pub fn check_key_map<S: AsRef<str>>(keys: &[S]) -> Result<(), PayloadError> {
    if keys.len() > OTEL_PROCESS_CTX_MAX_ATTRIBUTE_KEYS {
        return Err(PayloadError::TooManyAttributeKeys(keys.len()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, k) in keys.iter().enumerate() {
        let k = k.as_ref();
        if k.is_empty() {
            return Err(PayloadError::EmptyAttributeKey(i));
        }
        if !seen.insert(k) {
            return Err(PayloadError::DuplicateAttributeKey(i));
        }
    }
    Ok(())
}

/// Checks that `new` keeps every index of `old` with the same name (appending is allowed):
/// records already written name attributes by index, so an index can never change meaning.
pub fn check_append_only<A: AsRef<str>, B: AsRef<str>>(old: &[A], new: &[B]) -> Result<(), PayloadError> {
    for (i, o) in old.iter().enumerate() {
        match new.get(i) {
            Some(n) if n.as_ref() == o.as_ref() => {}
            _ => return Err(PayloadError::KeyMapChanged(i)),
        }
    }
    Ok(())
}

/// Encodes the payload: the caller's resource attributes (plus this library's SDK name and
/// version when not given), the schema version and the key map. Checks every rule that does not
/// depend on what is already published.
pub fn encode<K: AsRef<str>, V: AsRef<str>, S: AsRef<str>>(
    resource: &[(K, V)],
    key_map: &[S],
) -> Result<Vec<u8>, PayloadError> {
    let mut attrs: Vec<KeyValue> = resource
        .iter()
        .map(|(k, v)| string_kv(k.as_ref(), v.as_ref()))
        .collect();
    let given: std::collections::BTreeSet<&str> = resource.iter().map(|(k, _)| k.as_ref()).collect();
    for (key, default) in [(SDK_NAME_KEY, DEFAULT_SDK_NAME), (SDK_VERSION_KEY, DEFAULT_SDK_VERSION)] {
        if !given.contains(key) {
            attrs.push(string_kv(key, default));
        }
    }
    encode_typed(attrs, Vec::new(), key_map)
}

/// Checks one attribute value: scalars, an empty value, or a flat array of those.
fn check_value(key: &str, value: &Option<AnyValue>, in_array: bool) -> Result<(), PayloadError> {
    use any_value::Value as V;
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValue(_) | V::BoolValue(_) | V::IntValue(_) | V::DoubleValue(_)) => Ok(()),
        Some(V::ArrayValue(a)) if !in_array => {
            for v in &a.values {
                check_value(key, &Some(v.clone()), true)?;
            }
            Ok(())
        }
        Some(V::ArrayValue(_)) => Err(PayloadError::InvalidValue(format!("{key}: an array inside an array"))),
        Some(V::KvlistValue(_) | V::BytesValue(_)) => Err(PayloadError::InvalidValue(format!(
            "{key}: key-value lists and bytes are not taken"
        ))),
    }
}

/// Encodes the payload exactly as given: the `resource` attributes (typed; nothing added), the
/// caller's own process-context `attributes` (after the library's `threadlocal.*` ones), and the
/// key map. Checks every rule that does not depend on what is already published.
pub fn encode_typed<S: AsRef<str>>(
    resource: Vec<KeyValue>,
    attributes: Vec<KeyValue>,
    key_map: &[S],
) -> Result<Vec<u8>, PayloadError> {
    check_key_map(key_map)?;
    let mut seen = std::collections::BTreeSet::new();
    for kv in &resource {
        if kv.key.is_empty() {
            return Err(PayloadError::EmptyResourceKey);
        }
        if !seen.insert(kv.key.as_str()) {
            return Err(PayloadError::DuplicateResourceKey(kv.key.clone()));
        }
        check_value(&kv.key, &kv.value, false)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for kv in &attributes {
        let bad = |why: &str| PayloadError::InvalidContextAttribute(format!("{:?}: {why}", kv.key));
        if kv.key.is_empty() {
            return Err(bad("empty key"));
        }
        if kv.key.starts_with(RESERVED_CONTEXT_PREFIX) {
            return Err(bad("the threadlocal. prefix is reserved for the library"));
        }
        if !seen.insert(kv.key.as_str()) {
            return Err(bad("given twice"));
        }
        check_value(&kv.key, &kv.value, false)?;
    }
    let key_values = key_map
        .iter()
        .map(|k| AnyValue {
            value: Some(any_value::Value::StringValue(k.as_ref().to_owned())),
        })
        .collect();
    let mut context_attrs = Vec::with_capacity(attributes.len() + 2);
    context_attrs.push(string_kv(SCHEMA_VERSION_KEY, SCHEMA_VERSION));
    context_attrs.push(KeyValue {
        key: KEY_MAP_KEY.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: key_values })),
        }),
    });
    context_attrs.extend(attributes);
    let msg = ProcessContext {
        resource: Some(Resource { attributes: resource }),
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

    fn string_of(v: &Option<AnyValue>) -> Option<&str> {
        match v.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn round_trips_resource_schema_and_key_map() {
        let bytes = encode(
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
                ("telemetry.sdk.name", DEFAULT_SDK_NAME),
                ("telemetry.sdk.version", DEFAULT_SDK_VERSION),
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
        let bytes = encode(
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
        assert_eq!(check_append_only(&["a", "b"], &["a", "b", "c"]), Ok(()));
        assert_eq!(
            check_append_only(&["a", "b"], &["a", "x", "c"]),
            Err(PayloadError::KeyMapChanged(1))
        );
        assert_eq!(
            check_append_only(&["a", "b"], &["a"]),
            Err(PayloadError::KeyMapChanged(1))
        );
    }

    #[test]
    fn resource_rules_and_size_limit() {
        assert_eq!(
            encode(&[("", "v")], &[] as &[&str]),
            Err(PayloadError::EmptyResourceKey)
        );
        assert_eq!(
            encode(&[("k", "1"), ("k", "2")], &[] as &[&str]),
            Err(PayloadError::DuplicateResourceKey("k".into()))
        );
        let big = "x".repeat(OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE);
        assert!(
            matches!(encode(&[("k", big.as_str())], &[] as &[&str]), Err(PayloadError::TooLarge(n)) if n > OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE)
        );
    }

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
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
        let bytes = encode_typed(resource.clone(), extra.clone(), &["k"]).unwrap();
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
    fn typed_values_refuse_what_the_api_does_not_take() {
        use any_value::Value as V;
        let nested = V::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(V::ArrayValue(ArrayValue { values: vec![] })),
            }],
        });
        assert!(matches!(
            encode_typed(vec![kv("n", nested)], vec![], &[] as &[&str]),
            Err(PayloadError::InvalidValue(m)) if m.contains("array inside an array")
        ));
        assert!(matches!(
            encode_typed(vec![kv("b", V::BytesValue(vec![1]))], vec![], &[] as &[&str]),
            Err(PayloadError::InvalidValue(_))
        ));
        for (attrs, why) in [
            (vec![kv("", V::BoolValue(true))], "empty key"),
            (vec![kv("threadlocal.x", V::BoolValue(true))], "reserved"),
            (
                vec![kv("a", V::BoolValue(true)), kv("a", V::IntValue(1))],
                "given twice",
            ),
        ] {
            assert!(
                matches!(encode_typed(vec![], attrs, &[] as &[&str]), Err(PayloadError::InvalidContextAttribute(m)) if m.contains(why)),
                "{why}"
            );
        }
        assert_eq!(
            encode_typed(
                vec![kv("d", V::IntValue(1)), kv("d", V::IntValue(2))],
                vec![],
                &[] as &[&str]
            ),
            Err(PayloadError::DuplicateResourceKey("d".into()))
        );
        let big = "x".repeat(OTEL_PROCESS_CTX_MAX_PAYLOAD_SIZE);
        assert!(matches!(
            encode_typed(vec![], vec![kv("big", V::StringValue(big))], &[] as &[&str]),
            Err(PayloadError::TooLarge(_))
        ));
    }
}

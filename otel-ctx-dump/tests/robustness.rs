//! Decoder robustness: random and adversarial bytes fed to the record decoder, the process
//! context header check and the protobuf payload decoder give results or errors, never panics,
//! and what they return never claims more than the bytes hold.

use otel_ctx_dump::inspect::{read_record, SlotRead};
use otel_ctx_dump::maps::Memory;
use otel_ctx_dump::process_context::{self as pc, decode_payload, Header};
use otel_ctx_dump::record::{decode_attributes, decode_record, RecordHeader, HEADER_SIZE, MAX_ATTRS_READ};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use prost::Message;

/// One region of fake target memory.
struct Region(u64, Vec<u8>);

impl Memory for Region {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = addr
            .checked_add(buf.len() as u64)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        if addr < self.0 || end > self.0 + self.1.len() as u64 {
            return Err(std::io::Error::from_raw_os_error(libc::EFAULT));
        }
        let o = (addr - self.0) as usize;
        buf.copy_from_slice(&self.1[o..o + buf.len()]);
        Ok(())
    }
}

fn record_bytes(valid: u8, size: u16, attrs: &[u8]) -> Vec<u8> {
    let mut b = vec![0x5a; HEADER_SIZE];
    b[24] = valid;
    b[26..28].copy_from_slice(&size.to_ne_bytes());
    b.extend_from_slice(attrs);
    b
}

fn valid_payload() -> Vec<u8> {
    use pc::proto::*;
    let s = |v: &str| AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    };
    ProcessContext {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(s("svc")),
            }],
        }),
        attributes: vec![
            KeyValue {
                key: pc::SCHEMA_VERSION_KEY.into(),
                value: Some(s(pc::SCHEMA_VERSION)),
            },
            KeyValue {
                key: pc::KEY_MAP_KEY.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![s("a"), s("b")],
                    })),
                }),
            },
        ],
    }
    .encode_to_vec()
}

proptest! {
    // Failing cases are kept next to this file (cargo runs tests from the package directory).
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/robustness.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn record_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        match decode_record(&bytes) {
            None => prop_assert!(bytes.len() < HEADER_SIZE),
            Some(r) => {
                // Every decoded value came from inside the bytes and the announced size.
                // (Invalid UTF-8 grows when replaced, so only valid values are counted.)
                let used: usize = r.attributes.iter().filter(|a| !a.invalid_utf8).map(|a| 2 + a.value.len()).sum();
                let available = (bytes.len() - HEADER_SIZE).min(usize::from(r.header.attrs_data_size));
                prop_assert!(used <= available, "{} bytes of attributes from {}", used, available);
                prop_assert!(r.attributes.len() <= 256, "one entry per key index at most");
                prop_assert!(r.attributes.iter().all(|a| a.value.len() <= 255 * 3));
            }
        }
    }

    #[test]
    fn sizes_past_the_end_are_reported(size in 0u16..=u16::MAX, attrs in proptest::collection::vec(any::<u8>(), 0..700)) {
        let r = decode_record(&record_bytes(1, size, &attrs)).expect("header present");
        if usize::from(size) > attrs.len() {
            prop_assert!(r.truncated.is_some(), "size {} > {} bytes not reported", size, attrs.len());
        }
        prop_assert!(RecordHeader::parse(&record_bytes(1, size, &[])).unwrap().attrs_to_read() <= MAX_ATTRS_READ);
    }

    #[test]
    fn entries_with_invalid_utf8_are_flagged(key in any::<u8>(), value in proptest::collection::vec(any::<u8>(), 0..255)) {
        let mut data = vec![key, value.len() as u8];
        data.extend_from_slice(&value);
        let (attrs, truncated) = decode_attributes(&data, data.len());
        prop_assert_eq!(truncated, None);
        prop_assert_eq!(attrs.len(), 1);
        prop_assert_eq!(attrs[0].invalid_utf8, std::str::from_utf8(&value).is_err());
    }

    #[test]
    fn reading_a_record_from_memory_never_overreads(
        size in any::<u16>(),
        attrs in proptest::collection::vec(any::<u8>(), 0..700),
        valid in any::<u8>(),
    ) {
        let mem = Region(0x1000, record_bytes(valid, size, &attrs));
        match read_record(&mem, 0x1000) {
            SlotRead::Record { record, .. } => {
                prop_assert_eq!(record.header.valid, valid);
                prop_assert_eq!(record.is_valid(), valid == 1);
                if usize::from(size) > attrs.len() {
                    prop_assert!(record.truncated.is_some());
                }
            }
            other => prop_assert!(false, "{:?}", other),
        }
        // A record whose header itself is cut off by the end of memory is an error.
        let short = Region(0x1000, record_bytes(valid, size, &[])[..HEADER_SIZE - 1].to_vec());
        prop_assert!(matches!(read_record(&short, 0x1000), SlotRead::Error(_)), "short header accepted");
    }

    #[test]
    fn header_check_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(h) = Header::parse(&bytes) {
            prop_assert!(h.payload_size > 0 && h.payload_size <= pc::MAX_PAYLOAD_SIZE);
            prop_assert!(h.published_at_ns != 0 && h.payload_ptr != 0);
        }
    }

    #[test]
    fn huge_payload_sizes_are_rejected(size in (pc::MAX_PAYLOAD_SIZE + 1)..=u32::MAX) {
        let mut b = b"OTEL_CTX".to_vec();
        b.extend_from_slice(&2u32.to_ne_bytes());
        b.extend_from_slice(&size.to_ne_bytes());
        b.extend_from_slice(&1u64.to_ne_bytes());
        b.extend_from_slice(&0x1000u64.to_ne_bytes());
        let expected = format!("payload_size {size} exceeds");
        prop_assert!(Header::parse(&b).unwrap_err().starts_with(&expected));
    }

    #[test]
    fn payload_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_payload(&bytes);
    }

    #[test]
    fn truncated_or_mutated_payloads_never_panic(cut in 0usize..200, flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..8)) {
        let mut payload = valid_payload();
        for (at, byte) in flips {
            let n = payload.len();
            payload[at % n] = byte;
        }
        let cut = cut.min(payload.len());
        if let Ok(pc) = decode_payload(&payload[..cut]) {
            // Whatever decodes yields at most 256 usable keys, and names only from the map.
            prop_assert!(pc.key_map.as_ref().is_none_or(|m| m.len() <= pc::MAX_KEYS));
        }
    }
}

#[test]
fn deeply_nested_payload_is_an_error_not_a_stack_overflow() {
    // AnyValue{array_value{values[AnyValue{array_value{...}}]}} nested far past any sane depth.
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..5000 {
        // ArrayValue.values (field 1, length-delimited) containing the AnyValue so far.
        let mut array = vec![0x0a];
        push_varint(&mut array, inner.len() as u64);
        array.extend_from_slice(&inner);
        // AnyValue.array_value (field 5, length-delimited).
        let mut any = vec![0x2a];
        push_varint(&mut any, array.len() as u64);
        any.extend_from_slice(&array);
        inner = any;
    }
    // KeyValue{key: "k", value: inner} inside ProcessContext.attributes (field 2).
    let mut kv = vec![0x0a, 1, b'k', 0x12];
    push_varint(&mut kv, inner.len() as u64);
    kv.extend_from_slice(&inner);
    let mut msg = vec![0x12];
    push_varint(&mut msg, kv.len() as u64);
    msg.extend_from_slice(&kv);
    let r = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || decode_payload(&msg).is_err())
        .unwrap()
        .join()
        .expect("decoder must not overflow the stack");
    assert!(r, "a 5000-deep payload must be rejected");
}

#[test]
fn oversized_payload_is_rejected_before_decoding() {
    let big = vec![0u8; pc::MAX_PAYLOAD_SIZE as usize + 1];
    assert!(decode_payload(&big).unwrap_err().contains("limit"));
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

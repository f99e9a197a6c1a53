//! Decoding of one thread's record (OTEP 4947), from bytes copied out of the target. Layout
//! (byte-packed, host endianness): trace_id 16 bytes at 0, span_id 8 at 16, valid at 24,
//! trace_flags at 25, attrs_data_size (u16) at 26, attribute entries `[key_index u8][len u8]
//! [len bytes of UTF-8]` from 28. Nothing here trusts a size field: every decode works on the
//! bytes actually read and reports what did not fit.

use serde::Serialize;
use std::borrow::Cow;

/// Bytes a reader copies first: ids, valid, flags and the attribute size.
pub const HEADER_SIZE: usize = 28;
/// Most attribute bytes this reader copies (what the eBPF profiler reads: 642). A record
/// announcing more is reported as truncated.
pub const MAX_ATTRS_READ: usize = 642;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// 1 = consistent; any other value means a writer is in the middle of an update.
    pub valid: u8,
    pub trace_flags: u8,
    pub attrs_data_size: u16,
}

impl RecordHeader {
    /// Parses the 28-byte header; `None` if fewer bytes are given.
    pub fn parse(bytes: &[u8]) -> Option<RecordHeader> {
        let b = bytes.get(..HEADER_SIZE)?;
        Some(RecordHeader {
            trace_id: b[0..16].try_into().expect("16 bytes"),
            span_id: b[16..24].try_into().expect("8 bytes"),
            valid: b[24],
            trace_flags: b[25],
            attrs_data_size: u16::from_ne_bytes([b[26], b[27]]),
        })
    }

    /// How many attribute bytes a reader should copy after the header.
    pub fn attrs_to_read(&self) -> usize {
        usize::from(self.attrs_data_size).min(MAX_ATTRS_READ)
    }

    /// All-zero ids: a record is attached but no span is active (with `valid` 0, OTEP 4947's
    /// "no active span" for an in-place writer, or 1, as older writers leave it).
    pub fn is_idle(&self) -> bool {
        self.trace_id == [0; 16] && self.span_id == [0; 8]
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attribute {
    /// Position of the attribute's name in the process context's key map.
    #[serde(rename = "index")]
    pub key_index: u8,
    /// That name, when the process context has a usable key map (set by the inspector).
    pub key: Option<String>,
    /// The value; invalid UTF-8 is replaced (U+FFFD) and flagged.
    pub value: String,
    pub invalid_utf8: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub header: RecordHeader,
    /// Entries in order of first appearance; a repeated key keeps its last value.
    pub attributes: Vec<Attribute>,
    /// Why the attribute list is incomplete, if it is.
    pub truncated: Option<String>,
}

impl Record {
    pub fn is_valid(&self) -> bool {
        self.header.valid == 1
    }
}

/// Decodes attribute entries from the attribute bytes a reader copied; `announced` is the record's
/// `attrs_data_size`, which `data` may fall short of (read limit or a short read).
pub fn decode_attributes(data: &[u8], announced: usize) -> (Vec<Attribute>, Option<String>) {
    let data = &data[..data.len().min(announced)];
    let mut attributes: Vec<Attribute> = Vec::new();
    let mut truncated = None;
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let len = rest.get(1).map_or(0, |&len| usize::from(len));
        let Some(bytes) = rest.get(2..2 + len) else {
            // The spec says: stop at an entry that does not fit.
            let (needed, left) = (2 + len, rest.len());
            let why = format!("entry at offset {pos} needs {needed} bytes but only {left} remain in attrs_data_size");
            truncated = Some(why);
            break;
        };
        let value = String::from_utf8_lossy(bytes);
        let attribute = Attribute {
            key_index: rest[0],
            key: None,
            invalid_utf8: matches!(value, Cow::Owned(_)),
            value: value.into_owned(),
        };
        match attributes.iter_mut().find(|a| a.key_index == attribute.key_index) {
            Some(existing) => *existing = attribute,
            None => attributes.push(attribute),
        }
        pos += 2 + len;
    }
    // A size-limit or short-read cut explains an overrunning last entry better.
    let read = data.len();
    if read < announced {
        truncated = Some(if announced > MAX_ATTRS_READ && read == MAX_ATTRS_READ {
            format!("attrs_data_size {announced} exceeds the {read} bytes readers copy")
        } else {
            format!("only {read} of {announced} attribute bytes could be read")
        });
    }
    (attributes, truncated)
}

/// Decodes a record from the bytes copied from the target: the header followed by as many
/// attribute bytes as could be read. `None` if not even the header is there.
pub fn decode_record(bytes: &[u8]) -> Option<Record> {
    let header = RecordHeader::parse(bytes)?;
    let (attributes, truncated) = decode_attributes(&bytes[HEADER_SIZE..], usize::from(header.attrs_data_size));
    Some(Record {
        header,
        attributes,
        truncated,
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(valid: u8, attrs: &[u8], announced: u16) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        for (i, x) in b[..16].iter_mut().enumerate() {
            *x = i as u8 + 1;
        }
        for (i, x) in b[16..24].iter_mut().enumerate() {
            *x = 0xa0 + i as u8;
        }
        b[24] = valid;
        b[25] = 1;
        b[26..28].copy_from_slice(&announced.to_ne_bytes());
        b.extend_from_slice(attrs);
        b
    }

    #[test]
    fn decodes_ids_flags_and_attributes() {
        let attrs = b"\x00\x03GET\x02\x02w1";
        let r = decode_record(&record(1, attrs, attrs.len() as u16)).unwrap();
        assert!(r.is_valid());
        assert_eq!(hex(&r.header.trace_id), "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(hex(&r.header.span_id), "a0a1a2a3a4a5a6a7");
        assert_eq!(r.header.trace_flags, 1);
        assert_eq!(r.attributes.len(), 2);
        assert_eq!((r.attributes[0].key_index, r.attributes[0].value.as_str()), (0, "GET"));
        assert_eq!((r.attributes[1].key_index, r.attributes[1].value.as_str()), (2, "w1"));
        assert_eq!(r.truncated, None);
    }

    #[test]
    fn last_duplicate_wins() {
        let attrs = b"\x01\x01a\x02\x01b\x01\x02cc";
        let r = decode_record(&record(1, attrs, attrs.len() as u16)).unwrap();
        assert_eq!(r.attributes.len(), 2);
        assert_eq!(r.attributes[0].value, "cc");
    }

    #[test]
    fn overrunning_entry_is_reported_and_earlier_entries_kept() {
        let attrs = b"\x00\x02ok\x01\x09abc";
        let r = decode_record(&record(1, attrs, attrs.len() as u16)).unwrap();
        assert_eq!(r.attributes.len(), 1);
        assert_eq!(
            r.truncated.as_deref(),
            Some("entry at offset 4 needs 11 bytes but only 5 remain in attrs_data_size")
        );
    }

    #[test]
    fn size_past_the_bytes_read_is_a_short_read() {
        let attrs = b"\x00\x02ok";
        let r = decode_record(&record(1, attrs, 100)).unwrap();
        assert_eq!(r.attributes.len(), 1);
        assert_eq!(
            r.truncated.as_deref(),
            Some("only 4 of 100 attribute bytes could be read")
        );
    }

    #[test]
    fn size_past_the_read_limit_is_reported() {
        let attrs = vec![0u8; MAX_ATTRS_READ];
        let r = decode_record(&record(1, &attrs, 60000)).unwrap();
        assert_eq!(
            r.truncated.as_deref(),
            Some("attrs_data_size 60000 exceeds the 642 bytes readers copy")
        );
        assert_eq!(
            RecordHeader::parse(&record(1, &[], 60000)).unwrap().attrs_to_read(),
            MAX_ATTRS_READ
        );
    }

    #[test]
    fn invalid_utf8_is_flagged_not_dropped() {
        let attrs = b"\x03\x02\xff\xfe";
        let r = decode_record(&record(1, attrs, 4)).unwrap();
        assert!(r.attributes[0].invalid_utf8);
        assert_eq!(r.attributes[0].value, "\u{fffd}\u{fffd}");
    }

    #[test]
    fn invalid_flag_and_short_header() {
        assert!(!decode_record(&record(0, &[], 0)).unwrap().is_valid());
        assert!(!decode_record(&record(2, &[], 0)).unwrap().is_valid());
        assert!(decode_record(&[0u8; 27]).is_none());
    }
}

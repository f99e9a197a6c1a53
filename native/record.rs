//! The thread-context record: the bytes an out-of-process reader copies, laid out exactly as
//! OTEP 4947's table, and the in-place update protocol that keeps them consistent.

use crate::status::OtelThreadCtxStatus as Status;
use core::mem::{offset_of, size_of};
use core::ptr::addr_of_mut;
use core::sync::atomic::{compiler_fence, Ordering};

/// Total size of a record: the spec's recommended maximum.
pub const OTEL_THREAD_CTX_RECORD_SIZE: usize = 640;
/// Size of the fixed header a reader copies first (ids, valid, flags, attribute size).
pub const OTEL_THREAD_CTX_HEADER_SIZE: usize = 28;
/// Bytes available for attribute entries (`[key u8][len u8][len bytes]`).
pub const OTEL_THREAD_CTX_ATTRS_CAPACITY: usize = 612;
/// Longest attribute value one entry can hold, in bytes.
pub const OTEL_THREAD_CTX_MAX_VALUE_LEN: usize = 255;

/// One thread's published context, byte for byte what readers parse (OTEP 4947).
///
/// Offsets: trace_id 0, span_id 16, valid 24, trace_flags 25, attrs_data_size 26,
/// attrs_data 28; 640 bytes in all. Records this library allocates start 64-byte aligned.
///
/// In-place update protocol, for any writer that updates an attached record directly
/// (only ever from the thread it is attached to):
/// 1. store `valid = 0`, then a compiler barrier (C: `atomic_signal_fence(memory_order_seq_cst)`;
///    .NET: write every following field with `Volatile.Write`);
/// 2. write trace_id, span_id, trace_flags, attribute bytes, then `attrs_data_size`;
/// 3. a compiler barrier, then store `valid = 1`.
///
/// A reader interrupts the thread like a signal handler, so compiler ordering is all that
/// matters; no CPU fence is needed. All-zero ids mean "no active span".
#[repr(C)]
pub struct OtelThreadCtxRecord {
    /// W3C trace id bytes; all zero means no active trace.
    pub trace_id: [u8; 16],
    /// W3C span id bytes.
    pub span_id: [u8; 8],
    /// 1 when the record is consistent; any other value means "being updated".
    pub valid: u8,
    /// W3C trace-flags byte (bit 0 = sampled); 0 when the ids are unset.
    pub trace_flags: u8,
    /// Bytes of `attrs_data` in use.
    pub attrs_data_size: u16,
    /// Attribute entries: `[key_index u8][value_len u8][value_len bytes of UTF-8]`.
    pub attrs_data: [u8; OTEL_THREAD_CTX_ATTRS_CAPACITY],
}

const _: () = {
    assert!(offset_of!(OtelThreadCtxRecord, trace_id) == 0);
    assert!(offset_of!(OtelThreadCtxRecord, span_id) == 16);
    assert!(offset_of!(OtelThreadCtxRecord, valid) == 24);
    assert!(offset_of!(OtelThreadCtxRecord, trace_flags) == 25);
    assert!(offset_of!(OtelThreadCtxRecord, attrs_data_size) == 26);
    assert!(offset_of!(OtelThreadCtxRecord, attrs_data) == OTEL_THREAD_CTX_HEADER_SIZE);
    assert!(size_of::<OtelThreadCtxRecord>() == OTEL_THREAD_CTX_RECORD_SIZE);
    assert!(OTEL_THREAD_CTX_HEADER_SIZE + OTEL_THREAD_CTX_ATTRS_CAPACITY == OTEL_THREAD_CTX_RECORD_SIZE);
};

impl OtelThreadCtxRecord {
    /// Runs `write` on the record under the protocol: readers ignore it until `valid` is 1 again.
    /// Safety (here and below): `rec` points to a live record only the calling thread writes.
    #[inline(always)]
    unsafe fn update(rec: *mut Self, write: impl FnOnce()) {
        // Safety: live and written only by this thread (caller).
        unsafe {
            addr_of_mut!((*rec).valid).write_volatile(0);
            compiler_fence(Ordering::SeqCst);
            write();
            compiler_fence(Ordering::SeqCst);
            addr_of_mut!((*rec).valid).write_volatile(1);
        }
    }

    /// Writes ids and flags in place under the protocol; attributes are left as they are.
    #[inline(always)]
    pub(crate) unsafe fn write_ids(rec: *mut Self, trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) {
        // Safety: forwarded from the caller.
        unsafe {
            Self::update(rec, || {
                (*rec).trace_id = *trace_id;
                (*rec).span_id = *span_id;
                (*rec).trace_flags = flags;
            })
        }
    }

    /// Empties the record: no span, no attributes, and `valid = 0`, the OTEP's "no active span"
    /// for a writer that keeps its record attached (the other way, an empty slot, is for swaps).
    pub(crate) unsafe fn clear(rec: *mut Self) {
        // Safety: forwarded from the caller. The first half of the protocol: `valid = 0`, a
        // compiler barrier, then the rest of the header (ids, flags, attribute size) zeroed.
        unsafe {
            addr_of_mut!((*rec).valid).write_volatile(0);
            compiler_fence(Ordering::SeqCst);
            rec.cast::<u8>().write_bytes(0, OTEL_THREAD_CTX_HEADER_SIZE);
        }
    }

    /// Drops every attribute entry, in place under the protocol.
    pub(crate) unsafe fn clear_attributes(rec: *mut Self) {
        // Safety: forwarded from the caller.
        unsafe { Self::update(rec, || (*rec).attrs_data_size = 0) };
    }

    /// Sets the value of `key`, replacing an earlier entry for it, in place under the protocol.
    /// Values over 255 bytes are cut at a character boundary (`TRUNCATED`). On error
    /// (`INVALID_UTF8`, `NO_SPACE`) the record is not modified.
    pub(crate) unsafe fn set_attribute(rec: *mut Self, key: u8, value: &[u8]) -> Result<Status, Status> {
        let value = core::str::from_utf8(value).map_err(|_| Status::InvalidUtf8)?;
        let (value, truncated) = truncate_utf8(value, OTEL_THREAD_CTX_MAX_VALUE_LEN);
        // Safety: `rec` is live (caller).
        let (mut attrs, used) = unsafe { ((*rec).attrs_data, usize::from((*rec).attrs_data_size)) };
        let used = without_key(&mut attrs, used.min(OTEL_THREAD_CTX_ATTRS_CAPACITY), key);
        let entry_len = 2 + value.len();
        if used + entry_len > OTEL_THREAD_CTX_ATTRS_CAPACITY {
            return Err(Status::NoSpace);
        }
        attrs[used] = key;
        attrs[used + 1] = value.len() as u8;
        attrs[used + 2..used + entry_len].copy_from_slice(value.as_bytes());
        // Safety: forwarded from the caller.
        unsafe {
            Self::update(rec, || {
                (*rec).attrs_data = attrs;
                (*rec).attrs_data_size = (used + entry_len) as u16;
            })
        };
        Ok(if truncated { Status::Truncated } else { Status::Ok })
    }
}

/// Longest prefix of `s` of at most `max` bytes that ends on a character boundary; whether
/// that cut anything.
fn truncate_utf8(s: &str, max: usize) -> (&str, bool) {
    let end = (0..=max.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    (&s[..end], end < s.len())
}

/// Moves the whole entries of `attrs[..used]` but those for `key` to the front, dropping a torn
/// tail (from a writer that broke the format) rather than carrying it forward; returns their
/// length.
fn without_key(attrs: &mut [u8; OTEL_THREAD_CTX_ATTRS_CAPACITY], used: usize, key: u8) -> usize {
    let (mut read, mut write) = (0, 0);
    while read + 2 <= used && read + 2 + usize::from(attrs[read + 1]) <= used {
        let len = 2 + usize::from(attrs[read + 1]);
        if attrs[read] != key {
            attrs.copy_within(read..read + len, write);
            write += len;
        }
        read += len;
    }
    write
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes attribute entries the way a reader does: stop at an entry that does not fit, last
    /// value wins for a repeated key.
    fn decode_attributes(attrs: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut pos = 0;
        while pos + 2 <= attrs.len() && pos + 2 + usize::from(attrs[pos + 1]) <= attrs.len() {
            let (key, len) = (attrs[pos], usize::from(attrs[pos + 1]));
            let value = attrs[pos + 2..pos + 2 + len].to_vec();
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => out.push((key, value)),
            }
            pos += 2 + len;
        }
        out
    }

    fn empty() -> Box<OtelThreadCtxRecord> {
        Box::new(OtelThreadCtxRecord {
            trace_id: [0; 16],
            span_id: [0; 8],
            valid: 1,
            trace_flags: 0,
            attrs_data_size: 0,
            attrs_data: [0; OTEL_THREAD_CTX_ATTRS_CAPACITY],
        })
    }

    fn attrs(rec: &OtelThreadCtxRecord) -> Vec<(u8, Vec<u8>)> {
        decode_attributes(&rec.attrs_data[..usize::from(rec.attrs_data_size)])
    }

    #[test]
    fn attribute_is_encoded_as_key_length_bytes() {
        let mut rec = empty();
        let r = unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, 3, b"GET") };
        assert_eq!(r, Ok(Status::Ok));
        assert_eq!(rec.attrs_data_size, 5);
        assert_eq!(&rec.attrs_data[..5], &[3, 3, b'G', b'E', b'T']);
        assert_eq!(rec.valid, 1);
    }

    #[test]
    fn setting_a_key_again_replaces_its_value_and_keeps_others() {
        let mut rec = empty();
        unsafe {
            OtelThreadCtxRecord::set_attribute(&mut *rec, 0, b"root").unwrap();
            OtelThreadCtxRecord::set_attribute(&mut *rec, 1, b"/users").unwrap();
            OtelThreadCtxRecord::set_attribute(&mut *rec, 0, b"root2").unwrap();
        }
        assert_eq!(attrs(&rec), vec![(1, b"/users".to_vec()), (0, b"root2".to_vec())]);
        assert_eq!(rec.attrs_data_size, (2 + 6) + (2 + 5));
    }

    #[test]
    fn value_over_255_bytes_is_truncated_at_a_char_boundary_and_reported() {
        let mut rec = empty();
        let long = "é".repeat(200); // 400 bytes, 2 per char
        let r = unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, 7, long.as_bytes()) };
        assert_eq!(r, Ok(Status::Truncated));
        let stored = &attrs(&rec)[0].1;
        assert_eq!(stored.len(), 254);
        assert!(core::str::from_utf8(stored).is_ok());
    }

    #[test]
    fn entry_that_does_not_fit_is_refused_and_leaves_record_unchanged() {
        let mut rec = empty();
        let v = [b'x'; 255];
        for key in 0..2 {
            unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, key, &v).unwrap() };
        }
        let before = rec.attrs_data;
        let r = unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, 2, &[b'y'; 100]) };
        assert_eq!(r, Err(Status::NoSpace));
        assert_eq!(rec.attrs_data_size, 514);
        assert_eq!(rec.attrs_data, before);
        assert_eq!(rec.valid, 1);
    }

    #[test]
    fn replacing_a_large_value_frees_its_space() {
        let mut rec = empty();
        let v = [b'x'; 255];
        unsafe {
            OtelThreadCtxRecord::set_attribute(&mut *rec, 0, &v).unwrap();
            OtelThreadCtxRecord::set_attribute(&mut *rec, 1, &v).unwrap();
            OtelThreadCtxRecord::set_attribute(&mut *rec, 0, b"small").unwrap();
        }
        assert_eq!(
            unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, 2, &[b'z'; 90]) },
            Ok(Status::Ok)
        );
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut rec = empty();
        let r = unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, 1, &[0xff, 0xfe]) };
        assert_eq!(r, Err(Status::InvalidUtf8));
        assert_eq!(rec.attrs_data_size, 0);
    }

    #[test]
    fn empty_value_is_a_valid_entry() {
        let mut rec = empty();
        unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, 9, b"").unwrap() };
        assert_eq!(attrs(&rec), vec![(9, vec![])]);
    }

    #[test]
    fn decoder_stops_at_an_entry_that_overruns_and_last_duplicate_wins() {
        let bytes = [1, 1, b'a', 1, 1, b'b', 2, 9, b'c'];
        assert_eq!(decode_attributes(&bytes), vec![(1, b"b".to_vec())]);
    }

    #[test]
    fn write_ids_sets_ids_and_flags_and_leaves_record_valid() {
        let mut rec = empty();
        unsafe { OtelThreadCtxRecord::set_attribute(&mut *rec, 0, b"keep").unwrap() };
        unsafe { OtelThreadCtxRecord::write_ids(&mut *rec, &[1; 16], &[2; 8], 1) };
        assert_eq!(
            (rec.trace_id, rec.span_id, rec.trace_flags, rec.valid),
            ([1; 16], [2; 8], 1, 1)
        );
        assert_eq!(attrs(&rec), vec![(0, b"keep".to_vec())]);
    }

    #[test]
    fn clear_zeroes_the_record_and_leaves_valid_0() {
        let mut rec = empty();
        unsafe {
            OtelThreadCtxRecord::write_ids(&mut *rec, &[1; 16], &[2; 8], 1);
            OtelThreadCtxRecord::set_attribute(&mut *rec, 0, b"x").unwrap();
            OtelThreadCtxRecord::clear(&mut *rec);
        }
        assert_eq!(
            (
                rec.trace_id,
                rec.span_id,
                rec.trace_flags,
                rec.attrs_data_size,
                rec.valid
            ),
            ([0; 16], [0; 8], 0, 0, 0),
            "no span: valid 0, the rest zeroed"
        );
    }
}

//! Following one stopped thread's pointer to its slot (a fixed thread-pointer offset, or the
//! thread's DTV entry for the module) and copying the record it points to.

use super::modules::Resolution;
use crate::maps::Memory;
use crate::platform::Platform;
use crate::record::{self, Record, RecordHeader};

/// What one thread's slot in one module holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotRead {
    /// The thread has no TLS block for the module yet (dynamic TLS not allocated).
    NoSlot(String),
    /// The slot is NULL.
    NoContext,
    Record {
        addr: u64,
        record: Record,
    },
    Error(String),
}

/// Follows one thread's pointer to the slot and the record. The thread must be stopped.
pub fn read_slot(mem: &dyn Memory, platform: &Platform, tp: u64, resolution: Resolution) -> SlotRead {
    let slot = match resolution {
        Resolution::StaticOffset(off) => tp.wrapping_add(off as u64),
        Resolution::Dynamic {
            module_id,
            offset,
            generation,
        } => match dtv_block(mem, platform, tp, module_id, generation) {
            Ok(block) => block.wrapping_add(offset),
            Err(read) => return read,
        },
    };
    match mem.read_u64(slot) {
        Ok(0) => SlotRead::NoContext,
        Ok(ptr) => read_record(mem, ptr),
        Err(e) => SlotRead::Error(format!("reading the slot at {slot:#x}: {e}")),
    }
}

/// The address of module `id`'s TLS block for the thread whose thread pointer is `tp`,
/// or why there is none (`NoSlot`: not allocated yet; `Error`: unreadable).
fn dtv_block(mem: &dyn Memory, p: &Platform, tp: u64, id: u64, generation: Option<u64>) -> Result<u64, SlotRead> {
    let Some(layout) = p.dtv else {
        let e = "this C library's DTV layout is not implemented on this architecture";
        return Err(SlotRead::Error(e.into()));
    };
    let read = |addr: u64, what: &str| {
        mem.read_u64(addr)
            .map_err(|e| SlotRead::Error(format!("reading {what}: {e}")))
    };
    let dtv = read(tp.wrapping_add(layout.pointer_offset as u64), "the DTV pointer")?;
    let absent = |e: String| Err(SlotRead::NoSlot(e));
    let len = read(dtv.wrapping_add(layout.count_offset as u64), "the DTV length")?;
    if id > len {
        return absent(format!(
            "the thread's DTV has {len} entries, module {id} not among them"
        ));
    }
    // Only a glibc module has a generation, to compare with the DTV's (its entry 0).
    if let Some(g) = generation {
        let dtv_gen = read(dtv, "the DTV generation")?;
        if dtv_gen < g {
            return absent(format!(
                "the thread's DTV (generation {dtv_gen}) predates the module (generation {g})"
            ));
        }
    }
    let entry = dtv.wrapping_add(layout.entry_size.wrapping_mul(id));
    match read(entry, &format!("DTV[{id}]"))? {
        0 | u64::MAX => absent("TLS block not allocated for this thread yet".into()),
        block => Ok(block),
    }
}

/// Copies and decodes the record at `addr`: the header, then the attribute bytes it announces
/// (bounded by the reader's limit).
pub fn read_record(mem: &dyn Memory, addr: u64) -> SlotRead {
    let mut bytes = vec![0u8; record::HEADER_SIZE];
    if let Err(e) = mem.read(addr, &mut bytes) {
        return SlotRead::Error(format!("reading the record at {addr:#x}: {e}"));
    }
    let want = RecordHeader::parse(&bytes).expect("a whole header").attrs_to_read();
    bytes.extend(mem.read_prefix(addr + record::HEADER_SIZE as u64, want));
    let record = record::decode_record(&bytes).expect("a whole header");
    SlotRead::Record { addr, record }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{LINUX_X86_64_GLIBC, LINUX_X86_64_MUSL};

    fn words(ws: &[u64]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    fn record_bytes() -> Vec<u8> {
        let mut r = vec![0u8; 28];
        r[0] = 0xab;
        r[16] = 0xcd;
        r[24] = 1;
        r[25] = 1;
        r[26..28].copy_from_slice(&5u16.to_ne_bytes());
        r.extend_from_slice(b"\x01\x03GET");
        r
    }

    #[test]
    fn static_offset_slot() {
        let tp = 0x7000_0000u64;
        let mem = vec![(tp - 0x40, words(&[0x9000])), (0x9000, record_bytes())];
        match read_slot(&mem, &LINUX_X86_64_GLIBC, tp, Resolution::StaticOffset(-0x40)) {
            SlotRead::Record { addr, record } => {
                assert_eq!(addr, 0x9000);
                assert_eq!(record.header.trace_id[0], 0xab);
                assert_eq!(record.attributes[0].value, "GET");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dtv_slot_and_its_absent_cases() {
        let tp = 0x7000_0000u64;
        let dtv = 0x5000u64;
        // dtv[-1] = 3 entries, dtv[0] = generation 4, dtv[1] = block, dtv[2] = unallocated.
        let table = words(&[3, 0, 4, 0, 0x8000, 0, u64::MAX, 0, 0x8100, 0]);
        let mem = vec![
            (tp + 8, words(&[dtv])),
            (dtv - 16, table),
            (0x8000, words(&[0, 0x9000])),
            (0x9000, record_bytes()),
        ];
        let res = |module_id, generation| Resolution::Dynamic {
            module_id,
            offset: 8,
            generation,
        };
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, tp, res(1, Some(4))),
            SlotRead::Record { addr: 0x9000, .. }
        ));
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, tp, res(1, None)),
            SlotRead::Record { .. }
        ));
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, tp, res(2, Some(4))),
            SlotRead::NoSlot(_)
        ));
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, tp, res(4, Some(4))),
            SlotRead::NoSlot(_)
        ));
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, tp, res(1, Some(5))),
            SlotRead::NoSlot(_)
        ));
        // dtv[3] points at unmapped memory.
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, tp, res(3, Some(4))),
            SlotRead::Error(_)
        ));
    }
    #[test]
    fn musl_dtv_has_word_entries_and_a_module_count() {
        let tp = 0x7000_0000u64;
        let dtv = 0x5000u64;
        // dtv[0] = 2 modules, dtv[1] = block, dtv[2] = block; dtv[3] lies past the count.
        let mem = vec![
            (tp + 8, words(&[dtv])),
            (dtv, words(&[2, 0x8000, 0x8100, 0x8000])),
            (0x8100, words(&[0, 0x9000])),
            (0x9000, record_bytes()),
        ];
        let res = |module_id| Resolution::Dynamic {
            module_id,
            offset: 8,
            generation: None,
        };
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_MUSL, tp, res(2)),
            SlotRead::Record { addr: 0x9000, .. }
        ));
        assert!(matches!(
            read_slot(&mem, &LINUX_X86_64_MUSL, tp, res(3)),
            SlotRead::NoSlot(_)
        ));
        // The glibc layout on the same memory reads 16-byte entries and another header.
        assert!(!matches!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, tp, res(2)),
            SlotRead::Record { .. }
        ));
    }

    #[test]
    fn null_slot_is_no_context() {
        let mem = vec![(0x1000, words(&[0]))];
        assert_eq!(
            read_slot(&mem, &LINUX_X86_64_GLIBC, 0x1010, Resolution::StaticOffset(-0x10)),
            SlotRead::NoContext
        );
    }

    #[test]
    fn record_with_unreadable_attributes_is_a_short_read() {
        let r = record_bytes();
        let mem = vec![(0x9000, r[..28].to_vec())];
        match read_record(&mem, 0x9000) {
            SlotRead::Record { record, .. } => {
                assert!(record.attributes.is_empty());
                assert!(record.truncated.is_some());
            }
            other => panic!("{other:?}"),
        }
    }
}

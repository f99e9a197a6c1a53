//! At least 100,000 generated or mutated process-context payloads, process-context
//! headers and ELF files through the decoders (34,000 of each, 102,000 in all): none panics or
//! aborts (an abort ends this test binary), and each is answered within a fixed time. ELF files go
//! through the reader the inspector uses on a target's files (`elf::FileData`, bounded by the
//! file's size), so a header claiming a terabyte is among the mutations.

use otel_ctx_dump::elf::{self, FileData};
use otel_ctx_dump::maps::{Mapping, Memory};
use otel_ctx_dump::process_context::{self as pc, decode_payload, read_process_context, Header};
use proptest::prelude::*;
use prost::Message;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CASES: u32 = 34_000;
/// Every input is answered within this (a generous bound for a debug build on a busy machine;
/// the answers take micro- to milliseconds).
const LIMIT: Duration = Duration::from_secs(2);

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

/// Values that make size and offset fields interesting.
const WORDS: [u64; 8] = [0, 1, 0xff, 0xffff_ffff, 1 << 32, 1 << 40, u64::MAX, u64::MAX / 2];

/// A mutation: set a byte, or an 8-byte word to one of `WORDS`, at an offset (modulo the length).
#[derive(Clone, Debug)]
enum Mutation {
    Byte(usize, u8),
    Word(usize, usize),
}

fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(o, b)| Mutation::Byte(o, b)),
        (any::<usize>(), 0..WORDS.len()).prop_map(|(o, w)| Mutation::Word(o, w)),
    ];
    proptest::collection::vec(one, 0..max)
}

/// Applies the mutations, each at an offset inside one of `hot` ranges (or anywhere).
fn mutate(base: &[u8], hot: &[(usize, usize)], ms: &[Mutation]) -> Vec<u8> {
    let mut b = base.to_vec();
    if b.is_empty() {
        return b;
    }
    let total = b.len();
    let at = |o: usize| {
        let (start, len) = hot.get(o % (hot.len() + 1)).copied().unwrap_or((0, total));
        (start + (o / 7) % len.max(1)).min(total - 1)
    };
    for m in ms {
        match *m {
            Mutation::Byte(o, v) => {
                let i = at(o);
                b[i] = v;
            }
            Mutation::Word(o, w) => {
                let i = at(o).min(b.len().saturating_sub(8));
                let n = (b.len() - i).min(8);
                b[i..i + n].copy_from_slice(&WORDS[w].to_le_bytes()[..n]);
            }
        }
    }
    b
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let t = f();
    (t, start.elapsed())
}

// ---- process-context payloads ----

fn payloads() -> &'static [Vec<u8>] {
    static P: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    P.get_or_init(|| {
        use pc::proto::*;
        let s = |v: &str| AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        };
        let kv = |k: &str, v: AnyValue| KeyValue {
            key: k.into(),
            value: Some(v),
        };
        let array = |items: Vec<AnyValue>| AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: items })),
        };
        let keys: Vec<AnyValue> = (0..300).map(|i| s(&format!("key{i}"))).collect();
        let full = ProcessContext {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("svc")),
                    kv(
                        "n",
                        AnyValue {
                            value: Some(any_value::Value::IntValue(-7)),
                        },
                    ),
                    kv(
                        "d",
                        AnyValue {
                            value: Some(any_value::Value::DoubleValue(f64::NAN)),
                        },
                    ),
                    kv(
                        "b",
                        AnyValue {
                            value: Some(any_value::Value::BytesValue(vec![0, 255])),
                        },
                    ),
                    kv(
                        "kv",
                        AnyValue {
                            value: Some(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![kv("inner", array(vec![s("x"), s("")]))],
                            })),
                        },
                    ),
                ],
            }),
            attributes: vec![
                kv(pc::SCHEMA_VERSION_KEY, s(pc::SCHEMA_VERSION)),
                kv(pc::KEY_MAP_KEY, array(vec![s("a"), s(""), s("a")])),
            ],
        };
        let long_map = ProcessContext {
            resource: None,
            attributes: vec![kv(pc::KEY_MAP_KEY, array(keys))],
        };
        vec![
            full.encode_to_vec(),
            long_map.encode_to_vec(),
            vec![0x12, 0x00],
            Vec::new(),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn payloads_are_decoded_or_refused_in_time(
        base in 0usize..4,
        ms in mutations(8),
        cut in proptest::option::of(any::<usize>()),
        random in proptest::collection::vec(any::<u8>(), 0..256),
        use_random in proptest::bool::weighted(0.2),
    ) {
        let input = if use_random {
            random
        } else {
            let mut p = mutate(&payloads()[base], &[], &ms);
            if let Some(c) = cut {
                let keep = c % (p.len() + 1);
                p.truncate(keep);
            }
            p
        };
        let (result, took) = timed(|| decode_payload(&input));
        prop_assert!(took < LIMIT, "{took:?} for {input:?}");
        if let Ok(c) = result {
            // What the checker reads of it is consistent with what was decoded.
            prop_assert!(c.key_map.as_ref().is_none_or(|m| m.len() <= input.len()));
        }
    }
}

// ---- process-context headers, through the reader ----

/// Fake target memory: one header page at 0x10000 and a payload at 0x20000.
struct Target(Vec<u8>, Vec<u8>);

impl Memory for Target {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        for (start, bytes) in [(0x10000u64, &self.0), (0x20000u64, &self.1)] {
            let end = addr
                .checked_add(buf.len() as u64)
                .ok_or(std::io::ErrorKind::InvalidInput)?;
            if addr >= start && end <= start + bytes.len() as u64 {
                let o = (addr - start) as usize;
                buf.copy_from_slice(&bytes[o..o + buf.len()]);
                return Ok(());
            }
        }
        Err(std::io::Error::from_raw_os_error(libc::EFAULT))
    }
}

fn good_header(payload_len: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(pc::SIGNATURE);
    h.extend_from_slice(&2u32.to_ne_bytes());
    h.extend_from_slice(&(payload_len as u32).to_ne_bytes());
    h.extend_from_slice(&12345u64.to_ne_bytes());
    h.extend_from_slice(&0x20000u64.to_ne_bytes());
    h
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn headers_are_read_or_refused_in_time(
        ms in mutations(6),
        len in 0usize..64,
        random in proptest::collection::vec(any::<u8>(), 0..48),
        use_random in proptest::bool::weighted(0.2),
    ) {
        let payload = payloads()[0].clone();
        let mut head = if use_random { random } else { mutate(&good_header(payload.len()), &[], &ms) };
        head.truncate(len.max(if use_random { 0 } else { 32 }));
        let (parsed, took) = timed(|| Header::parse(&head));
        prop_assert!(took < LIMIT);
        if let Ok(h) = parsed {
            prop_assert!(h.payload_size > 0 && h.payload_size <= pc::MAX_PAYLOAD_SIZE);
        }
        // The whole read, as the inspector does it (cancelled: no waiting for "being updated").
        let maps = [Mapping {
            start: 0x10000,
            end: 0x10000 + head.len().max(1) as u64,
            perms: "rw-p".into(),
            offset: 0,
            dev: "00:01".into(),
            inode: 1,
            path: "/memfd:OTEL_CTX (deleted)".into(),
        }];
        let mem = Target(head, payload);
        let (_, took) = timed(|| read_process_context(&maps, &mem, &|| true));
        prop_assert!(took < LIMIT);
    }
}

// ---- ELF files, through the bounded file reader ----

/// Byte ranges of a file worth mutating: (start, length).
type Ranges = Vec<(usize, usize)>;

struct Corpus {
    _dir: tempfile::TempDir,
    /// Each file's bytes, and the ranges worth mutating: headers, .dynsym, .dynstr, relocations.
    files: Vec<(Vec<u8>, Ranges)>,
    dir: std::path::PathBuf,
}

fn hot_ranges(bytes: &[u8]) -> Ranges {
    use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
    use object::Endianness;
    let mut hot = vec![(0, 64)];
    let Ok(file) = ElfFile64::<Endianness>::parse(bytes) else {
        return hot;
    };
    let (h, e) = (file.raw_header(), file.endian());
    hot.push((h.e_phoff.get(e) as usize, usize::from(h.e_phnum.get(e)) * 56));
    hot.push((h.e_shoff.get(e) as usize, usize::from(h.e_shnum.get(e)) * 64));
    if let Ok(sections) = h.sections(e, bytes) {
        for s in sections.iter() {
            let t = s.sh_type(e);
            if matches!(
                t,
                object::elf::SHT_DYNSYM | object::elf::SHT_STRTAB | object::elf::SHT_RELA | object::elf::SHT_DYNAMIC
            ) {
                hot.push((s.sh_offset(e) as usize, s.sh_size(e) as usize));
            }
        }
    }
    hot.retain(|&(start, len)| len > 0 && start < bytes.len());
    hot
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let slot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/tls_slot.c");
        let mut files = Vec::new();
        for (name, flag) in [
            ("desc", "-mtls-dialect=gnu2"),
            ("gd", "-mtls-dialect=gnu"),
            ("ie", "-ftls-model=initial-exec"),
        ] {
            let out = d.join(format!("lib{name}.so"));
            let status = Command::new("gcc")
                .args(["-O2", "-fPIC", "-shared", "-s", flag, "-o"])
                .arg(&out)
                .arg(&slot)
                .status()
                .expect("gcc");
            assert!(status.success());
            let bytes = std::fs::read(&out).unwrap();
            let hot = hot_ranges(&bytes);
            files.push((bytes, hot));
        }
        Corpus {
            dir: d.to_path_buf(),
            _dir: dir,
            files,
        }
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn elf_files_are_examined_or_refused_in_time(
        base in 0usize..3,
        ms in mutations(8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let (bytes, hot) = &corpus().files[base];
        let mut b = mutate(bytes, hot, &ms);
        if let Some(c) = cut.filter(|c| c % 4 == 0) {
            b.truncate(c % (b.len() + 1));
        }
        let len = b.len() as u64;
        let (result, took) = timed(|| elf::examine(&FileData::new(Cursor::new(b), len), None));
        prop_assert!(took < LIMIT, "{took:?}");
        if let Ok(e) = result {
            prop_assert!(e.entries.len() as u64 <= len / 24 + 1);
        }
    }
}

/// Control: the unmutated corpus is examined, and every file has the slot (so mutations start
/// from inputs that reach the deep paths).
#[test]
fn the_elf_corpus_has_the_slot() {
    let c = corpus();
    assert!(c.dir.exists());
    for (bytes, hot) in &c.files {
        let len = bytes.len() as u64;
        let e = elf::examine(&FileData::new(Cursor::new(bytes.clone()), len), None).unwrap();
        assert!(e.export.is_some());
        assert!(hot.len() >= 5, "{hot:?}");
    }
    assert!(decode_payload(&payloads()[0]).is_ok());
}

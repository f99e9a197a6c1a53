//! The in-place update protocol holds under real interruption: a thread-directed timer signal
//! samples the record through the TLS slot while the thread rewrites it in a tight loop, and no
//! sample marked valid may mix two updates.

mod common;

use otel_thread_ctx::ffi::*;
use otel_thread_ctx::record::OtelThreadCtxRecord;
use otel_thread_ctx::test_hooks::otel_thread_ctx_read_current;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static SAMPLES: AtomicU64 = AtomicU64::new(0);
static CONSISTENT: AtomicU64 = AtomicU64::new(0);
static INCONSISTENT: AtomicU64 = AtomicU64::new(0);
static BEING_UPDATED: AtomicU64 = AtomicU64::new(0);
static EMPTY: AtomicU64 = AtomicU64::new(0);
static UPDATES: AtomicU64 = AtomicU64::new(0);

/// Updates and samples the protocol test waits for, and the timer's period. On AArch64 the tests
/// run under qemu-user, where delivering one signal can take longer than 20 µs on a busy machine:
/// the writer then only runs signal handlers and never reaches its minimum. A fifth of each
/// minimum and a 200 µs period keep that run near ten seconds and leave the writer time to write.
#[cfg(not(target_arch = "aarch64"))]
const MIN_UPDATES: u64 = 1_000_000;
#[cfg(not(target_arch = "aarch64"))]
const MIN_SAMPLES: u64 = 10_000;
#[cfg(not(target_arch = "aarch64"))]
const TIMER_PERIOD_NS: libc::c_long = 20_000;
#[cfg(target_arch = "aarch64")]
const MIN_UPDATES: u64 = 200_000;
#[cfg(target_arch = "aarch64")]
const MIN_SAMPLES: u64 = 2_000;
#[cfg(target_arch = "aarch64")]
const TIMER_PERIOD_NS: libc::c_long = 200_000;

extern "C" fn sample(_: libc::c_int) {
    let mut rec = core::mem::MaybeUninit::<OtelThreadCtxRecord>::uninit();
    // Safety: read_current only loads the TLS slot and copies 640 bytes: async-signal-safe.
    let status = unsafe { otel_thread_ctx_read_current(rec.as_mut_ptr()) };
    SAMPLES.fetch_add(1, Ordering::Relaxed);
    if status != OtelThreadCtxStatus::Ok {
        EMPTY.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // Safety: read_current filled it.
    let rec = unsafe { rec.assume_init() };
    // A record attached but not yet written (the first update attaches a zeroed, valid record,
    // then writes it) holds no span: a legitimate state that no write of `ids_for` produces.
    let no_span = rec.trace_id == [0; 16] && rec.span_id == [0; 8] && rec.trace_flags == 0;
    let counter = match rec.valid {
        1 if common::ids_consistent(&rec.trace_id, &rec.span_id, rec.trace_flags) => &CONSISTENT,
        1 if no_span => &EMPTY,
        1 => &INCONSISTENT,
        _ => &BEING_UPDATED,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Counts {
    updates: u64,
    samples: u64,
    consistent: u64,
    inconsistent: u64,
    being_updated: u64,
    empty: u64,
}

/// Runs `write(n)` for n = 0, 1, 2, ... on a fresh thread while a timer signal aimed at that
/// thread samples its record, until both minimums are reached.
fn sample_while_writing(write: fn(u64), min_updates: u64, min_samples: u64) -> Counts {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for c in [&SAMPLES, &CONSISTENT, &INCONSISTENT, &BEING_UPDATED, &EMPTY, &UPDATES] {
        c.store(0, Ordering::Relaxed);
    }
    let signal = libc::SIGPROF;
    // Safety: installs a handler that only touches atomics and the async-signal-safe read.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = sample as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
    }

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Safety: gettid has no preconditions.
            tid_tx
                .send(unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t)
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                write(n);
                n += 1;
                UPDATES.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    let tid = tid_rx.recv().unwrap();

    // Safety: a zeroed sigevent is valid; the timer targets the writer thread only.
    let timer = unsafe {
        let mut event: libc::sigevent = std::mem::zeroed();
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = signal;
        event.sigev_notify_thread_id = tid;
        let mut timer: libc::timer_t = std::mem::zeroed();
        assert_eq!(libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer), 0);
        let every = libc::timespec {
            tv_sec: 0,
            tv_nsec: TIMER_PERIOD_NS,
        };
        let spec = libc::itimerspec {
            it_interval: every,
            it_value: every,
        };
        assert_eq!(libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()), 0);
        timer
    };

    let started = Instant::now();
    while (SAMPLES.load(Ordering::Relaxed) < min_samples || UPDATES.load(Ordering::Relaxed) < min_updates)
        && started.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Safety: the timer was created above.
    unsafe { libc::timer_delete(timer) };
    stop.store(true, Ordering::Relaxed);
    let updates = writer.join().unwrap();
    Counts {
        updates,
        samples: SAMPLES.load(Ordering::Relaxed),
        consistent: CONSISTENT.load(Ordering::Relaxed),
        inconsistent: INCONSISTENT.load(Ordering::Relaxed),
        being_updated: BEING_UPDATED.load(Ordering::Relaxed),
        empty: EMPTY.load(Ordering::Relaxed),
    }
}

#[test]
fn timer_signal_never_sees_a_valid_record_with_torn_fields() {
    let c = sample_while_writing(
        |n| {
            let (t, s, f) = common::ids_for(n);
            // Safety: valid pointers to local arrays.
            unsafe { otel_thread_ctx_update(&t, &s, f) };
        },
        MIN_UPDATES,
        MIN_SAMPLES,
    );
    println!(
        "signal stress: {} updates, {} samples: {} consistent, {} being updated (valid=0), {} before the first \
         write (no record or an empty one), {} INCONSISTENT",
        c.updates, c.samples, c.consistent, c.being_updated, c.empty, c.inconsistent
    );
    assert!(c.updates >= MIN_UPDATES, "only {} updates", c.updates);
    assert!(c.samples >= MIN_SAMPLES, "only {} samples", c.samples);
    assert_eq!(c.inconsistent, 0);
    assert!(
        c.consistent > c.samples / 2,
        "most samples land outside the short update window"
    );
}

/// Control: a writer that skips the valid flag is caught by the same sampler, so the zero above
/// means something.
#[test]
fn sampler_catches_a_writer_that_skips_the_protocol() {
    let c = sample_while_writing(
        |n| {
            let mut rec = std::ptr::null_mut();
            // Safety: a valid out-pointer.
            assert_eq!(
                unsafe { otel_thread_ctx_ensure_record(&mut rec) },
                OtelThreadCtxStatus::Ok
            );
            let (t, s, f) = common::ids_for(n);
            // Safety: this thread's attached record; written with volatile stores one byte at a
            // time so the compiler keeps the torn intermediate states a sampler can observe.
            unsafe {
                let bytes = rec.cast::<u8>();
                bytes.add(24).write_volatile(1); // claims the record is consistent throughout
                for (i, b) in t.iter().chain(s.iter()).enumerate() {
                    bytes.add(i).write_volatile(*b);
                }
                bytes.add(25).write_volatile(f);
            }
        },
        100_000,
        10_000,
    );
    println!("control: {} samples, {} inconsistent", c.samples, c.inconsistent);
    assert!(c.inconsistent > 0, "a torn writer must be detected");
}

//! The target keeps running normally while and after it is inspected many times: 100
//! inspections of a process that counts its loop iterations, its sleeps and the SIGUSR1 it
//! receives. Its counters keep advancing, every signal sent during the inspections arrives
//! (none lost or swallowed by the ptrace stops), no thread is ever left stopped, and it exits
//! normally.

mod support;

use otel_ctx_dump::inspect::{Inspector, SlotRead};
use std::process::Command;
use std::time::{Duration, Instant};
use support::Target;

const INSPECTIONS: u64 = 100;

fn counts(target: &mut Target) -> (u64, u64, u64) {
    target.send_line("?");
    let line = target.line(Duration::from_secs(10));
    let f: Vec<u64> = line.split(' ').skip(1).map(|s| s.parse().expect("count")).collect();
    assert_eq!(f.len(), 3, "{line}");
    (f[0], f[1], f[2])
}

#[test]
fn hundred_inspections_leave_the_target_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = support::gcc_linked(dir.path(), "counter.c", "counter");
    let mut target = Target::spawn(&mut Command::new(&exe));
    let pid = target.pid();
    assert_eq!(target.line(Duration::from_secs(30)), "ready");
    let (loops0, sleeps0, _) = counts(&mut target);

    let mut inspector = Inspector::new(pid);
    let mut seen_active = 0;
    let started = Instant::now();
    for i in 1..=INSPECTIONS {
        // A signal in flight while the threads are being stopped.
        // Safety: kill only sends a signal to our own child, which is alive (we hold it).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
        let snapshot = inspector.snapshot(None).expect("inspect");
        assert_eq!(snapshot.threads.len(), 4, "main, two spinners, one sleeper");
        for t in &snapshot.threads {
            assert_eq!(t.error, None, "tid {}", t.tid);
            if let Some((_, SlotRead::Record { record, .. })) = t.reads.first() {
                if record.is_valid() && !record.header.is_idle() {
                    seen_active += 1;
                }
            }
        }
        for (tid, state) in support::thread_states(pid) {
            assert!(
                !matches!(state, 't' | 'T'),
                "after inspection {i}: thread {tid} in state {state}"
            );
        }
        // Each signal is handled before the next is sent, so none can merge with another.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, _, signals) = counts(&mut target);
            if signals == i {
                break;
            }
            assert!(signals < i, "more signals than sent");
            assert!(Instant::now() < deadline, "signal {i} lost: target counted {signals}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let elapsed = started.elapsed();
    eprintln!("{INSPECTIONS} inspections of 4 threads in {elapsed:?}");
    // The two spinners publish a context that changes on every loop; a consistent record is
    // seen on nearly every inspection (a read landing mid-update is reported, not trusted).
    assert!(
        seen_active >= INSPECTIONS,
        "only {seen_active} consistent records in {INSPECTIONS} inspections"
    );

    let (loops1, sleeps1, _) = counts(&mut target);
    std::thread::sleep(Duration::from_millis(50));
    let (loops2, sleeps2, _) = counts(&mut target);
    assert!(
        loops1 > loops0 && loops2 > loops1,
        "loop counter stalled: {loops0} {loops1} {loops2}"
    );
    assert!(
        sleeps1 > sleeps0 && sleeps2 > sleeps1,
        "sleeper stalled: {sleeps0} {sleeps1} {sleeps2}"
    );
    assert_eq!(
        target.finish(Duration::from_secs(10)),
        0,
        "target did not exit normally"
    );
    assert_eq!(target.line(Duration::from_secs(5)), "done");
}

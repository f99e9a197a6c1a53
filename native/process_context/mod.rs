//! The process context (OTEP 4719 version 2): one mapping per process, named OTEL_CTX, whose
//! header points at a protobuf payload describing the service and naming the thread attribute
//! key indexes (`threadlocal.attribute_key_map`) that thread records use.
//!
//! A profiler reads thread records only once it has found this context: without the key map
//! their attributes are anonymous bytes. [`publish`] makes it, [`update`] replaces the payload
//! under the spec's update protocol, [`unpublish`] removes it. The C API is in [`ffi`].
//!
//! Fork: the mapping is not inherited (MADV_DONTFORK). A child that calls [`publish`] or
//! [`update`] gets a fresh mapping of its own; the parent's stays as it was. The module's lock is
//! held across every fork (see `fork_safe`), so a fork while another thread is inside one of these
//! functions waits for it, and the child finds the lock free.

pub mod ffi;
mod mapping;
pub mod payload;

use crate::fork_safe::ForkSafeMutex;
use mapping::{boottime_ns, Backing, Mapping};
pub use payload::PayloadError;
use std::sync::MutexGuard;

/// Why a publish, update or unpublish did nothing.
#[derive(Debug)]
pub enum ProcessCtxError {
    /// The payload or key map breaks a rule; see [`PayloadError`].
    Payload(PayloadError),
    /// This process already published a context: there is one per process; use [`update`].
    AlreadyPublished,
    /// This process has no published context (a forked child has none of its own yet).
    NotPublished,
    /// No mapping could be made, or the anonymous fallback could not be named (so no reader
    /// could find it): the OS error is given.
    Mapping(std::io::Error),
}

impl From<PayloadError> for ProcessCtxError {
    fn from(e: PayloadError) -> Self {
        Self::Payload(e)
    }
}

impl std::fmt::Display for ProcessCtxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Payload(e) => write!(f, "process context refused: {e:?}"),
            Self::AlreadyPublished => f.write_str("a process context is already published; update it instead"),
            Self::NotPublished => f.write_str("no process context is published by this process"),
            Self::Mapping(e) => write!(f, "the OTEL_CTX mapping could not be made or named: {e}"),
        }
    }
}

impl std::error::Error for ProcessCtxError {}

/// What this process has published.
pub(crate) struct Published {
    mapping: Mapping,
    /// The bytes the header points at; owned here so they stay valid while published.
    payload: Box<[u8]>,
    key_map: Vec<String>,
    /// The process that made the mapping: a different `getpid()` means we are a forked child.
    pid: u32,
    timestamp: u64,
}

/// Held across `fork` (see fork_safe).
pub(crate) static STATE: ForkSafeMutex<Option<Published>> = ForkSafeMutex::new(None);

fn state() -> MutexGuard<'static, Option<Published>> {
    // A panic while holding the lock cannot leave the header half written in a way readers
    // accept (the timestamp is written last), so the state stays usable: poison is ignored.
    STATE.lock()
}

/// Takes what this process published, abandoning (not unmapping) what a parent published.
fn take_own(slot: &mut Option<Published>) -> Option<Published> {
    match slot.take() {
        Some(p) if p.pid == std::process::id() => Some(p),
        Some(inherited) => {
            inherited.mapping.abandon();
            None
        }
        None => None,
    }
}

fn publish_fresh(payload: Vec<u8>, key_map: Vec<String>, prefer_memfd: bool) -> Result<Published, ProcessCtxError> {
    let mut mapping = Mapping::create(prefer_memfd).map_err(ProcessCtxError::Mapping)?;
    let payload = payload.into_boxed_slice();
    let timestamp = boottime_ns().max(1);
    // Safety: `payload` moves into the returned Published, which keeps its heap bytes in place
    // until it is replaced or the mapping is dropped.
    unsafe { mapping.publish(payload.as_ptr(), payload.len() as u32, timestamp) };
    if let Err(e) = mapping.name() {
        if mapping.backing() == Backing::Anonymous {
            // Neither a memfd name nor a VMA name: no reader could find it.
            return Err(ProcessCtxError::Mapping(e));
        }
    }
    Ok(Published {
        mapping,
        payload,
        key_map,
        pid: std::process::id(),
        timestamp,
    })
}

/// The timestamp for an update: readers detect a change by the value, so it must be strictly
/// larger than the last one even if the clock has not moved (or went back, as after a restore).
fn next_timestamp(last: u64) -> u64 {
    boottime_ns().max(last.saturating_add(1))
}

fn owned_keys<S: AsRef<str>>(keys: &[S]) -> Vec<String> {
    keys.iter().map(|k| k.as_ref().to_owned()).collect()
}

/// Publishes this process's context: `resource` attributes (`service.name`,
/// `service.instance.id`, `deployment.environment.name`, `telemetry.sdk.language`, ...; SDK name
/// and version default to this library's) and the thread attribute `key_map` (position = key
/// index). Refused with [`ProcessCtxError::AlreadyPublished`] if this process already has one.
pub fn publish<K: AsRef<str>, V: AsRef<str>, S: AsRef<str>>(
    resource: &[(K, V)],
    key_map: &[S],
) -> Result<(), ProcessCtxError> {
    let bytes = payload::encode(resource, key_map)?;
    let mut slot = state();
    if slot.as_ref().is_some_and(|p| p.pid == std::process::id()) {
        return Err(ProcessCtxError::AlreadyPublished);
    }
    take_own(&mut slot);
    *slot = Some(publish_fresh(bytes, owned_keys(key_map), true)?);
    Ok(())
}

/// Replaces the published payload. The key map may only grow: every index already published
/// keeps its name ([`PayloadError::KeyMapChanged`] otherwise). On any error the published
/// context is untouched. In a forked child this publishes a fresh mapping of the child's own,
/// still holding the key map to the parent's (the child's thread records came from it).
pub fn update<K: AsRef<str>, V: AsRef<str>, S: AsRef<str>>(
    resource: &[(K, V)],
    key_map: &[S],
) -> Result<(), ProcessCtxError> {
    let bytes = payload::encode(resource, key_map)?;
    let mut slot = state();
    let Some(current) = slot.as_mut() else {
        return Err(ProcessCtxError::NotPublished);
    };
    payload::check_append_only(&current.key_map, key_map)?;
    if current.pid != std::process::id() {
        take_own(&mut slot);
        *slot = Some(publish_fresh(bytes, owned_keys(key_map), true)?);
        return Ok(());
    }
    let new_payload = bytes.into_boxed_slice();
    let timestamp = next_timestamp(current.timestamp);
    // Safety: `new_payload` is stored in `current` right below and kept until the next change.
    unsafe {
        current
            .mapping
            .replace_payload(new_payload.as_ptr(), new_payload.len() as u32, timestamp)
    };
    // Profilers watch this prctl to notice updates; where the kernel cannot name the mapping
    // (before 6.2 for a memfd, or without CONFIG_ANON_VMA_NAME) the memfd name already lets
    // readers find it, so the result does not matter here.
    let _ = current.mapping.name();
    current.payload = new_payload;
    current.key_map = owned_keys(key_map);
    current.timestamp = timestamp;
    Ok(())
}

/// Removes the context: marks it unpublished for a reader mid-copy, then unmaps it.
/// [`ProcessCtxError::NotPublished`] if this process has none (a forked child's inherited state
/// is dropped then too).
pub fn unpublish() -> Result<(), ProcessCtxError> {
    let mut slot = state();
    match take_own(&mut slot) {
        Some(p) => {
            drop(p);
            Ok(())
        }
        None => Err(ProcessCtxError::NotPublished),
    }
}

/// A copy of the published payload bytes, for diagnostics and tests; None if this process has
/// published nothing.
pub fn published_payload() -> Option<Vec<u8>> {
    state()
        .as_ref()
        .filter(|p| p.pid == std::process::id())
        .map(|p| p.payload.to_vec())
}

/// The address of the published header (the start of the OTEL_CTX mapping), for diagnostics
/// and tests; None if this process has published nothing.
pub fn published_address() -> Option<usize> {
    state()
        .as_ref()
        .filter(|p| p.pid == std::process::id())
        .map(|p| p.mapping.address())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of /proc/self/maps starting at `addr`.
    fn maps_line(addr: usize) -> Option<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let prefix = format!("{addr:x}-");
        maps.lines().find(|l| l.starts_with(&prefix)).map(str::to_owned)
    }

    #[test]
    fn anonymous_fallback_is_named_and_published_or_refused() {
        // Exercises the mapping code directly (not the process-wide context) so it can run
        // alongside other tests. Kernels built without CONFIG_ANON_VMA_NAME cannot name it:
        // then publishing without a memfd must fail, since no reader could find the mapping.
        let naming_works = Mapping::create(false).unwrap().name().is_ok();
        let payload = b"abc".to_vec();
        let published = publish_fresh(payload.clone(), vec!["k".into()], false);
        let p = match published {
            Ok(p) => p,
            Err(ProcessCtxError::Mapping(e)) => {
                assert!(!naming_works, "naming works, yet publishing failed: {e}");
                return;
            }
            Err(e) => panic!("unexpected error {e}"),
        };
        assert!(naming_works);
        assert_eq!(p.mapping.backing(), Backing::Anonymous);
        let line = maps_line(p.mapping.address()).expect("mapping listed");
        assert!(line.ends_with("[anon:OTEL_CTX]"), "{line}");
        assert!(line.split_whitespace().nth(1).unwrap().starts_with("rw-p"), "{line}");
        // Safety: the mapping is live and at least 32 bytes.
        let header = unsafe { std::slice::from_raw_parts(p.mapping.address() as *const u8, 32) };
        assert_eq!(&header[0..8], b"OTEL_CTX");
        assert_eq!(u32::from_ne_bytes(header[8..12].try_into().unwrap()), 2);
        assert_eq!(u32::from_ne_bytes(header[12..16].try_into().unwrap()), 3);
        assert_eq!(u64::from_ne_bytes(header[16..24].try_into().unwrap()), p.timestamp);
        assert_eq!(
            u64::from_ne_bytes(header[24..32].try_into().unwrap()),
            p.payload.as_ptr() as u64
        );
        let addr = p.mapping.address();
        drop(p);
        assert!(maps_line(addr).is_none_or(|l| !l.contains("OTEL_CTX")));
    }

    #[test]
    fn update_timestamps_always_move_forward() {
        let now = boottime_ns();
        assert!(next_timestamp(0) >= now);
        let future = now + 3_600_000_000_000;
        assert_eq!(next_timestamp(future), future + 1);
        assert!(next_timestamp(now) > now);
    }

    #[test]
    fn memfd_mapping_carries_the_memfd_name() {
        let m = Mapping::create(true).unwrap();
        assert_eq!(m.backing(), Backing::Memfd);
        let line = maps_line(m.address()).expect("mapping listed");
        assert!(line.ends_with("/memfd:OTEL_CTX (deleted)"), "{line}");
        assert!(!line.split_whitespace().nth(1).unwrap().contains('x'), "{line}");
    }
}

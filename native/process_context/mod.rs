//! The process context (OTEP 4719 version 2): one mapping per process, named OTEL_CTX, whose
//! header points at a protobuf payload describing the service and naming the thread attribute
//! key indexes that thread records use. The C API is in [`ffi`].
//!
//! Fork: the mapping is not inherited (MADV_DONTFORK); a child that publishes or updates gets a
//! fresh mapping of its own. The module's lock is held across every fork (see `fork_safe`).

pub mod ffi;
mod mapping;
pub mod payload;

use crate::fork_safe::ForkSafeMutex;
use mapping::{boottime_ns, Mapping};
pub use payload::PayloadError;

/// Why a publish, update or unpublish did nothing.
#[derive(Debug)]
pub enum ProcessCtxError {
    /// The payload or key map breaks a rule; see [`PayloadError`].
    Payload(PayloadError),
    /// This process already published a context: there is one per process; use [`update`].
    AlreadyPublished,
    /// This process has no published context (a forked child has none of its own yet).
    NotPublished,
    /// The mapping could not be made, or named (readers need the name): the OS error.
    Mapping(std::io::Error),
    /// Another OTEL_CTX mapping is in this process (another library published a context, and
    /// there is one per process): its line of `/proc/self/maps`. Nothing was mapped.
    OtherContextPublished(String),
}

impl From<PayloadError> for ProcessCtxError {
    fn from(e: PayloadError) -> Self {
        Self::Payload(e)
    }
}

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

impl Published {
    /// Points the header at `payload`, then names the mapping again: profilers watch that prctl
    /// to notice updates.
    fn set(&mut self, payload: Vec<u8>, key_map: Vec<String>) -> std::io::Result<()> {
        let payload = payload.into_boxed_slice();
        self.timestamp = next_timestamp(self.timestamp);
        // Safety: `payload` is stored in `self` right below and kept until the next change.
        unsafe {
            self.mapping
                .publish(payload.as_ptr(), payload.len() as u32, self.timestamp)
        };
        (self.payload, self.key_map) = (payload, key_map);
        self.mapping.name()
    }
}

fn publish_fresh(payload: Vec<u8>, key_map: Vec<String>, prefer_memfd: bool) -> Result<Published, ProcessCtxError> {
    let mapping = Mapping::create(prefer_memfd).map_err(ProcessCtxError::Mapping)?;
    let mut p = Published {
        mapping,
        payload: Box::default(),
        key_map: Vec::new(),
        pid: std::process::id(),
        timestamp: 0,
    };
    match p.set(payload, key_map) {
        // Neither a memfd name nor a VMA name: no reader could find it.
        Err(e) if !p.mapping.memfd => Err(ProcessCtxError::Mapping(e)),
        _ => Ok(p),
    }
}

/// The timestamp for an update: readers detect a change by the value, so it must be strictly
/// larger than the last one even if the clock has not moved (or went back, as after a restore).
fn next_timestamp(last: u64) -> u64 {
    boottime_ns().max(last.saturating_add(1))
}

/// Publishes this process's context: string `resource` attributes (`service.name`, ...; SDK name
/// and version default to this library's) and the thread attribute `key_map` (position = key
/// index). Refused with [`ProcessCtxError::AlreadyPublished`] if this process already has one,
/// and with [`ProcessCtxError::OtherContextPublished`] if another library's OTEL_CTX mapping is
/// in the process (one process context per process).
pub fn publish<K: AsRef<str>, V: AsRef<str>, S: AsRef<str>>(
    resource: &[(K, V)],
    key_map: &[S],
) -> Result<(), ProcessCtxError> {
    let bytes = payload::encode(payload::string_resource(resource), Vec::new(), key_map)?;
    store(bytes, key_map, false)
}

/// Replaces the published payload. The key map may only grow: every index already published
/// keeps its name ([`PayloadError::KeyMapChanged`] otherwise). On any error the published
/// context is untouched. In a forked child this publishes a fresh mapping of the child's own,
/// still holding the key map to the parent's (the child's thread records came from it).
pub fn update<K: AsRef<str>, V: AsRef<str>, S: AsRef<str>>(
    resource: &[(K, V)],
    key_map: &[S],
) -> Result<(), ProcessCtxError> {
    let bytes = payload::encode(payload::string_resource(resource), Vec::new(), key_map)?;
    store(bytes, key_map, true)
}

/// Publishes (or, with `update`, replaces under the rules of [`update`]) an encoded payload.
pub(crate) fn store<S: AsRef<str>>(bytes: Vec<u8>, key_map: &[S], update: bool) -> Result<(), ProcessCtxError> {
    let mut slot = STATE.lock();
    let own = slot.as_ref().is_some_and(|p| p.pid == std::process::id());
    match slot.as_ref() {
        Some(p) if update => payload::check_append_only(&p.key_map, key_map)?,
        None if update => return Err(ProcessCtxError::NotPublished),
        _ if own => return Err(ProcessCtxError::AlreadyPublished),
        _ => {}
    }
    let key_map = key_map.iter().map(|k| k.as_ref().to_owned()).collect();
    let Some(current) = slot.as_mut().filter(|_| own) else {
        // Nothing published, or only by a parent (abandoned here): a fresh mapping, unless
        // someone else's is there (a parent's is not: MADV_DONTFORK).
        if let Some(line) = mapping::other_context(None) {
            return Err(ProcessCtxError::OtherContextPublished(line));
        }
        take_own(&mut slot);
        *slot = Some(publish_fresh(bytes, key_map, true)?);
        return Ok(());
    };
    // Where the kernel cannot name the mapping, the memfd name already lets readers find it.
    let _ = current.set(bytes, key_map);
    Ok(())
}

/// Takes what this process published, abandoning (not unmapping) what a parent published.
fn take_own(slot: &mut Option<Published>) -> Option<Published> {
    let p = slot.take()?;
    if p.pid == std::process::id() {
        return Some(p);
    }
    // A parent's: MADV_DONTFORK left this child without it, and unmapping its address could
    // hit something mapped there since.
    core::mem::forget(p.mapping);
    None
}

/// Removes the context: marks it unpublished for a reader mid-copy, then unmaps it.
/// [`ProcessCtxError::NotPublished`] if this process has none.
pub fn unpublish() -> Result<(), ProcessCtxError> {
    take_own(&mut STATE.lock())
        .map(drop)
        .ok_or(ProcessCtxError::NotPublished)
}

/// Looks at what this process published, if anything (for diagnostics and tests).
fn published<T>(f: impl FnOnce(&Published) -> T) -> Option<T> {
    STATE.lock().as_ref().filter(|p| p.pid == std::process::id()).map(f)
}

/// A copy of the published payload bytes; None if this process has published nothing.
pub fn published_payload() -> Option<Vec<u8>> {
    published(|p| p.payload.to_vec())
}

/// The address of the published header (the start of the OTEL_CTX mapping); None if this
/// process has published nothing.
pub fn published_address() -> Option<usize> {
    published(|p| p.mapping.address())
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
            Err(e) => panic!("unexpected error {e:?}"),
        };
        assert!(naming_works);
        assert!(!p.mapping.memfd);
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
        assert!(m.memfd);
        let line = maps_line(m.address()).expect("mapping listed");
        assert!(line.ends_with("/memfd:OTEL_CTX (deleted)"), "{line}");
        assert!(!line.split_whitespace().nth(1).unwrap().contains('x'), "{line}");
    }
}

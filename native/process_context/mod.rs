//! The process context (OTEP 4719 version 2): one mapping per process, named OTEL_CTX, whose
//! header points at a protobuf payload describing the service and naming the thread attribute
//! key indexes that thread records use. The C API is in [`ffi`].
//!
//! Fork: the mapping is not inherited (MADV_DONTFORK); a child that publishes gets a fresh
//! mapping of its own. The module's lock is held across every fork (see `fork_safe`).

pub mod ffi;
mod mapping;
pub mod payload;

use crate::fork_safe::{ForkSafeMutex, Locked};
use crate::status::OtelThreadCtxStatus as Status;
use mapping::{boottime_ns, Mapping};

/// What this process has published.
pub(crate) struct Published {
    mapping: Mapping,
    /// The bytes the header points at; owned here so they stay valid while published.
    payload: Box<[u8]>,
    /// What the payload was encoded from, to encode it again when a key is declared.
    resource: Vec<payload::KeyValue>,
    attributes: Vec<payload::KeyValue>,
    /// Set in a forked child (by the atfork child handler): the mapping is the parent's, and
    /// MADV_DONTFORK left the child without it. A pid check alone misses a child that is PID 1
    /// of a new namespace like its parent; the handler alone misses a child made by a raw
    /// `clone` system call, which runs no atfork handler: [`Published::own`] uses both.
    inherited: bool,
    /// The process that made the mapping.
    pid: u32,
    timestamp: u64,
}

/// The process's context: what is published, and its one attribute key map, which outlives a
/// publication (and a fork): thread records keep naming attributes by its indexes.
pub(crate) struct State {
    published: Option<Published>,
    key_map: Vec<String>,
    /// The `threadlocal.schema_version` written; None until chosen or first needed.
    schema_version: Option<String>,
}

/// Held across `fork` (see fork_safe).
pub(crate) static STATE: ForkSafeMutex<State> = ForkSafeMutex::new(State {
    published: None,
    key_map: Vec::new(),
    schema_version: None,
});

impl Locked for State {
    fn mutex() -> &'static ForkSafeMutex<Self> {
        &STATE
    }

    /// What the parent published is the parent's (decided here, not by comparing pids, which a
    /// child in a new PID namespace can share with its parent).
    fn in_child(&mut self) {
        if let Some(p) = &mut self.published {
            p.inherited = true;
        }
    }
}

impl State {
    /// The schema version name to write: the one chosen, else [`payload::SCHEMA_VERSION_ENV`]'s
    /// if it is set and valid, else the default.
    fn schema(&mut self) -> &str {
        self.schema_version.get_or_insert_with(|| {
            let env = std::env::var(payload::SCHEMA_VERSION_ENV).ok();
            let env = env.filter(|v| payload::check_schema_version(v).is_ok());
            env.unwrap_or_else(|| payload::DEFAULT_SCHEMA_VERSION.to_owned())
        })
    }

    /// Takes `key_map` and `schema`, and publishes the context again with them if this process
    /// has published one; nothing changes on error.
    fn republish(&mut self, key_map: Vec<String>, schema: String) -> Result<(), Status> {
        if let Some(p) = self.published.as_mut().filter(|p| p.own()) {
            let _ = p.set(payload::encode(&p.resource, &p.attributes, &key_map, &schema)?);
        }
        (self.key_map, self.schema_version) = (key_map, Some(schema));
        Ok(())
    }
}

impl Published {
    /// Whether this process made the mapping (see `inherited`).
    fn own(&self) -> bool {
        !self.inherited && self.pid == std::process::id()
    }

    /// Points the header at `payload`, then names the mapping again: profilers watch that prctl
    /// to notice updates.
    fn set(&mut self, payload: Vec<u8>) -> std::io::Result<()> {
        let payload = payload.into_boxed_slice();
        self.timestamp = next_timestamp(self.timestamp);
        // Safety: `payload` is stored in `self` right below and kept until the next change.
        unsafe {
            self.mapping
                .publish(payload.as_ptr(), payload.len() as u32, self.timestamp)
        };
        self.payload = payload;
        self.mapping.name()
    }
}

/// A fresh mapping publishing `payload`; `MAPPING_FAILED`, with `errno` set, if it cannot be made
/// or found by readers.
fn publish_fresh(payload: Vec<u8>, prefer_memfd: bool) -> Result<Published, Status> {
    let failed = |e: std::io::Error| {
        // Safety: the C library's errno location is valid for the calling thread.
        unsafe { *libc::__errno_location() = e.raw_os_error().unwrap_or(libc::EIO) };
        Status::MappingFailed
    };
    let mut p = Published {
        mapping: Mapping::create(prefer_memfd).map_err(failed)?,
        payload: Box::default(),
        resource: Vec::new(),
        attributes: Vec::new(),
        inherited: false,
        pid: std::process::id(),
        timestamp: 0,
    };
    match p.set(payload) {
        // Neither a memfd name nor a VMA name: no reader could find it.
        Err(e) if !p.mapping.memfd => Err(failed(e)),
        _ => Ok(p),
    }
}

/// The timestamp for an update: readers detect a change by the value, so it must be strictly
/// larger than the last one even if the clock has not moved (or went back, as after a restore).
fn next_timestamp(last: u64) -> u64 {
    boottime_ns().max(last.saturating_add(1))
}

/// Publishes this process's context, or replaces the one it published (readers see the old or
/// the new one, never a mix): the `resource` attributes (`telemetry.sdk.name` and `version`
/// default to this library's, see [`payload::with_sdk_defaults`]), the caller's own context
/// `attributes`, and the thread attribute `key_map` (position = key index), merged into the
/// process's key map as [`payload::merge_key_maps`] says. On error nothing changes.
/// `OTHER_CONTEXT_PUBLISHED` if another library's OTEL_CTX mapping is in the process (one
/// process context per process). In a forked child this publishes a fresh mapping of the
/// child's own, the key map still the parent's (the child's thread records came from it).
pub fn publish<S: AsRef<str>>(
    mut resource: Vec<payload::KeyValue>,
    attributes: Vec<payload::KeyValue>,
    key_map: &[S],
) -> Result<(), Status> {
    payload::with_sdk_defaults(&mut resource);
    let mut state = STATE.lock();
    let key_map = payload::merge_key_maps(&state.key_map, key_map)?;
    let bytes = payload::encode(&resource, &attributes, &key_map, state.schema())?;
    let current = match state.published.as_mut().filter(|p| p.own()) {
        Some(current) => {
            // Where the kernel cannot name the mapping, the memfd name already lets readers find it.
            let _ = current.set(bytes);
            current
        }
        None => {
            // Nothing published, or only by a parent (abandoned here): a fresh mapping, unless
            // someone else's is there. A parent's is not someone else's: MADV_DONTFORK keeps it
            // out of the child, and where that is ignored (qemu-user) it is at its known address.
            let parents = state.published.as_ref().map(|p| p.mapping.address());
            if mapping::other_context(parents) {
                return Err(Status::OtherContextPublished);
            }
            take_own(&mut state.published);
            state.published.insert(publish_fresh(bytes, true)?)
        }
    };
    (current.resource, current.attributes) = (resource, attributes);
    state.key_map = key_map;
    Ok(())
}

/// The key index of `name` in the process's key map, appended if it is not there yet (and the
/// published context, if any, published again with it). `EMPTY_ATTRIBUTE_KEY`,
/// `TOO_MANY_ATTRIBUTE_KEYS` (a 257th key), `PAYLOAD_TOO_LARGE`; nothing changes then.
pub fn declare_key(name: &str) -> Result<u8, Status> {
    let mut state = STATE.lock();
    if let Some(i) = state.key_map.iter().position(|k| k == name) {
        return Ok(i as u8);
    }
    let key_map = [&state.key_map[..], &[name.to_owned()]].concat();
    payload::check_key_map(&key_map)?;
    let schema = state.schema().to_owned();
    state.republish(key_map, schema)?;
    Ok((state.key_map.len() - 1) as u8)
}

/// Chooses the `threadlocal.schema_version` name the process writes (by default
/// `tlsdesc_v1_dev`, or the [`payload::SCHEMA_VERSION_ENV`] environment variable), and publishes
/// the context again with it if one is published. For readers that know the pending rename.
pub fn set_schema_version(name: &str) -> Result<(), Status> {
    payload::check_schema_version(name)?;
    let mut state = STATE.lock();
    let key_map = state.key_map.clone();
    state.republish(key_map, name.to_owned())
}

/// Unpublishes, and forgets the key map and the schema version choice, so tests in one binary
/// start afresh.
#[cfg(feature = "test-hooks")]
pub(crate) fn forget_key_map() {
    let mut state = STATE.lock();
    take_own(&mut state.published);
    state.key_map.clear();
    state.schema_version = None;
}

/// Takes what this process published, abandoning (not unmapping) what a parent published.
fn take_own(slot: &mut Option<Published>) -> Option<Published> {
    let p = slot.take()?;
    if p.own() {
        return Some(p);
    }
    // A parent's: MADV_DONTFORK left this child without it, and unmapping its address could
    // hit something mapped there since.
    core::mem::forget(p.mapping);
    None
}

/// Removes the context: marks it unpublished for a reader mid-copy, then unmaps it. The key
/// map stays. `NOT_PUBLISHED` if this process has none.
pub fn unpublish() -> Result<(), Status> {
    take_own(&mut STATE.lock().published)
        .map(drop)
        .ok_or(Status::NotPublished)
}

/// Looks at what this process published, if anything (for diagnostics and tests).
fn published<T>(f: impl FnOnce(&Published) -> T) -> Option<T> {
    STATE.lock().published.as_ref().filter(|p| p.own()).map(f)
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
        let published = publish_fresh(payload.clone(), false);
        let p = match published {
            Ok(p) => p,
            Err(Status::MappingFailed) => {
                let e = std::io::Error::last_os_error();
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

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `target/<profile>` of the running test binary (it lives in `target/<profile>/deps`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

/// The cdylib cargo built next to this test binary.
pub fn cdylib_path() -> PathBuf {
    let path = target_profile_dir().join("libotel_thread_ctx.so");
    assert!(path.exists(), "{} is missing: run `cargo build` first", path.display());
    path
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Ids that encode a checkable relation: a reader can tell a torn record from a whole one.
pub fn ids_for(n: u64) -> ([u8; 16], [u8; 8], u8) {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&n.to_le_bytes());
    trace[8..].copy_from_slice(&(!n).to_le_bytes());
    let span = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    (trace, span, (n & 1) as u8)
}

/// Whether the ids satisfy the relation [`ids_for`] writes.
pub fn ids_consistent(trace: &[u8; 16], span: &[u8; 8], flags: u8) -> bool {
    let n = u64::from_le_bytes(trace[..8].try_into().unwrap());
    ids_for(n) == (*trace, *span, flags)
}

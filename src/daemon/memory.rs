//! How the process takes memory from the system, set once at start before
//! any thread of ours runs.

/// SQLite allocates through the C library's malloc (Rust code through
/// mimalloc). glibc gives freed memory at the top of a thread's heap back to
/// the kernel once more than its trim threshold is free; the spool thread's
/// commits crossed it on every commit, and each `madvise` then interrupted
/// the other CPUs to flush their TLBs (README "Benchmarks" has the cost).
/// A high threshold keeps that memory for the next commit.
pub(super) fn keep_freed_c_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc tunable; called before any thread
    // of ours starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// mimalloc reserves a 1 GiB arena and asks for transparent huge pages on
/// it, so each 2 MiB page it touches is resident whole: most of an idle
/// daemon's memory, for no measurable gain in speed (README "Benchmarks"
/// has the figures). Only this process is affected, whatever the system's
/// THP setting.
pub(super) fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of this
    // process; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

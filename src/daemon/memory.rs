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

/// `mi_option_purge_delay` in mimalloc v2's `mimalloc.h` (the crate names
/// only some options).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc gives memory it no longer uses back to the system after 10 ms
/// by default; after 3 ms the daemon's peak is about 3 MiB lower under load
/// at no measurable cost in CPU (1 ms cost 10%: README "Benchmarks"). An
/// operator's `MIMALLOC_PURGE_DELAY` is left as set.
pub(super) fn purge_sooner() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set only stores an option's value; it is not
    // thread-safe, and is called before any thread of ours starts.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_goes_from_mimallocs_default_to_3_ms() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reading an option's value; nothing else in this test
        // process sets mimalloc's options.
        let read = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        // 10 is mimalloc's documented default for purge_delay: the number
        // names that option and no other.
        assert_eq!(read(), 10);
        purge_sooner();
        assert_eq!(read(), 3);
    }
}

//! The process allocator: mimalloc, and its tuning for the batch commands.
//!
//! glibc malloc serialises on an arena lock when one thread frees what another allocated
//! (parsed events cross from the parser threads to the sealer): ~25% of seal time in profiles.
//!
//! By default mimalloc 3 returns freed memory to the OS ("purges" it) a second after it is
//! freed, and asks for transparent huge pages, so reusing memory faults in fresh 2 MiB pages
//! that the kernel zeroes whole. A seal frees and reallocates every segment's columns and
//! Parquet buffers; a verify every file's decoded batches. Profiles (issue 13, `perf record`, 1M
//! events) put 19% of `cairn seal`'s samples and 39% of `cairn verify`'s in the kernel's
//! `clear_page_erms` under those faults, and `perf stat -e page-faults` counted 11,906 faults
//! for a seal against 1,538 with purging off. The batch commands therefore keep freed memory
//! for reuse and use 4 KiB pages. With purging off, 5 alternating runs each with and without
//! huge pages (`MIMALLOC_ALLOW_THP=0`): `cairn verify` peak RSS 230–269 → 130–150 MiB and
//! system time 0.04–0.68 → 0.10–0.13 s (median wall 0.51 → 0.59 s, within this machine's
//! noise); `cairn seal` system time 0.55–0.96 → 0.32–0.37 s, median wall 2.93 → 2.74 s. The
//! long-running services (`serve`, `ingest`) keep mimalloc's defaults, which return memory
//! between bursts.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Indices in mimalloc 3's `mi_option_e` (include/mimalloc.h) that libmimalloc-sys 0.1.49 does
/// not name. Cargo.lock pins the version; the test checks the indices against the defaults.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// For commands that run to completion: never return freed memory to the OS, and no
/// transparent huge pages from here on.
pub fn tune_for_batch() {
    // SAFETY: mi_option_set only stores the values (a purge delay of -1 disables purging,
    // allow_thp 0 stops mimalloc's madvise(MADV_HUGEPAGE)). prctl(PR_SET_THP_DISABLE) sets a
    // flag of this process that the kernel checks on later faults, also in memory mimalloc
    // reserved before main; it fails harmlessly on kernels without it.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_option_indices_are_purge_delay_and_allow_thp() {
        use libmimalloc_sys::mi_option_get;
        // SAFETY: reads and sets option values.
        let (delay, thp) = unsafe {
            (
                mi_option_get(super::MI_OPTION_PURGE_DELAY),
                mi_option_get(super::MI_OPTION_ALLOW_THP),
            )
        };
        // Defaults from mimalloc 3's src/options.c (its header's comment still says 10 ms).
        assert_eq!(
            delay, 1000,
            "option 15 is not purge_delay (default 1000 ms)"
        );
        assert_eq!(thp, 1, "option 43 is not allow_thp (default 1)");
        super::tune_for_batch();
        let (delay, thp) = unsafe {
            (
                mi_option_get(super::MI_OPTION_PURGE_DELAY),
                mi_option_get(super::MI_OPTION_ALLOW_THP),
            )
        };
        assert_eq!((delay, thp), (-1, 0));
        #[cfg(target_os = "linux")]
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }
}

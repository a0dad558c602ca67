fn main() -> std::process::ExitCode {
    tune_malloc();
    latchkey::cli::main()
}

/// glibc raises its mmap threshold dynamically (up to 32 MiB) after large blocks are freed, so
/// argon2id's 19 MiB working memory ends up cached in per-thread malloc arenas: measured
/// ~570 MiB RSS after a minute of concurrent logins (bench/soak.sh). A fixed threshold sends
/// large blocks to mmap, returned to the OS on free; a small arena count limits fragmentation
/// across the blocking thread pool.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called once, first thing in
    // main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

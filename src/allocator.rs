//! How a sweep asks glibc's allocator to give memory back: large buffers
//! (attachments, compressed batches, their frames) are mapped and unmapped
//! on their own, at any size from 128 KiB on.
//!
//! glibc starts with that threshold but raises it to the size of each
//! mapped buffer freed, up to 32 MiB; from then on, buffers of several MiB
//! come from a worker's arena, and what is freed there mostly stays in the
//! process. Over a sweep of a few hundred seeds on two workers that grew
//! peak RSS to 110-200 MB for about 30 MB of live heap. Fixing the threshold
//! at glibc's own starting value stops the raising (mallopt(3)).

/// glibc's initial `M_MMAP_THRESHOLD`, in bytes.
const MMAP_THRESHOLD_BYTES: i32 = 128 << 10;

/// Map every buffer of [`MMAP_THRESHOLD_BYTES`] or more on its own for the
/// rest of the process, unless `MALLOC_MMAP_THRESHOLD_` says otherwise. A
/// sweep calls this; a single seed (`repro`, the benchmark) does not, as
/// one seed's buffers do not pile up, and mapping each afresh costs it
/// page faults (up to 12% more CPU for `inline`).
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator, which
        // glibc guards with its own locks; any value is valid to pass.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}

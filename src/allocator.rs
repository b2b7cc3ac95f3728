//! The process's allocator: small blocks from mimalloc, large buffers from
//! the system allocator (glibc), and how a sweep asks glibc to give large
//! buffers back.
//!
//! A simulated seed allocates many small, short-lived blocks (frames,
//! events, JSON values, futures) and a few large buffers (attachments,
//! compressed batches). mimalloc serves the small ones faster than glibc:
//! 8% more seeds per CPU-second in the suite benchmark, 11% less CPU in a
//! sweep. But it keeps freed large buffers in its own segments, and with
//! them a sweep's peak RSS grew from about 61 MB to 150 MB. Large buffers
//! therefore go to glibc, which maps each on its own and unmaps it when
//! freed ([`return_freed_memory`]).

use std::alloc::{GlobalAlloc, Layout, System};

/// The smallest block, in bytes, that goes to the system allocator: glibc's
/// initial `M_MMAP_THRESHOLD`, so that each such buffer is a mapping of its
/// own once [`return_freed_memory`] has fixed the threshold there.
const LARGE_BYTES: usize = 128 << 10;

/// A global allocator that sends blocks under [`LARGE_BYTES`] to mimalloc
/// and larger ones to the system allocator. The `pitfall` binary and the
/// benchmarks use it; a binary of your own that calls
/// [`crate::cli::main`] may too:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOCATOR: pitfall::allocator::Allocator = pitfall::allocator::Allocator;
/// ```
pub struct Allocator;

/// Which allocator serves a block of `size_bytes`.
fn is_large(size_bytes: usize) -> bool {
    size_bytes >= LARGE_BYTES
}

// SAFETY: each block is freed or resized by the allocator that made it, as
// its layout's size (the same at free as at allocation, per GlobalAlloc's
// contract) picks the same one; a resize across LARGE_BYTES moves the block
// from one to the other with an allocation, a copy and a free.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            System.alloc(layout)
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            System.alloc_zeroed(layout)
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size()) {
            System.dealloc(ptr, layout)
        } else {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_large(layout.size()), is_large(new_size)) {
            (true, true) => System.realloc(ptr, layout, new_size),
            (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
            _ => {
                // SAFETY: the caller guarantees that new_size, rounded up to
                // the alignment, does not overflow isize.
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            }
        }
    }
}

/// How long mimalloc keeps freed memory before returning it to the OS during
/// a sweep, in milliseconds (its default: 1,000).
const SWEEP_PURGE_DELAY_MS: i64 = 10;

/// `mi_option_purge_delay` of mimalloc.h (the enum's sixteenth value), which
/// libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For the rest of a sweep, give freed memory back to the OS soon: glibc
/// maps every buffer of [`LARGE_BYTES`] or more on its own (unless
/// `MALLOC_MMAP_THRESHOLD_` says otherwise), and mimalloc returns freed
/// pages after [`SWEEP_PURGE_DELAY_MS`] (unless `MIMALLOC_PURGE_DELAY` does).
///
/// glibc starts with that threshold but raises it to the size of each
/// mapped buffer freed, up to 32 MiB; from then on, buffers of several MiB
/// come from a worker's arena, and what is freed there mostly stays in the
/// process. Over a sweep of a few hundred seeds on two workers that grew
/// peak RSS to 110-200 MB for about 30 MB of live heap. Fixing the
/// threshold at glibc's own starting value stops the raising (mallopt(3)).
/// mimalloc holds freed pages for a second by default, across several seeds
/// of a worker: `run --seeds 200` peaked at 61-66 MB with that, 59 MB with
/// 10 ms, for about 2% more CPU.
///
/// A sweep calls this; a single seed (`repro`, the benchmark) does not, as
/// one seed's buffers do not pile up, and mapping each afresh costs it page
/// faults (up to 12% more CPU for `inline`).
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator, which
        // glibc guards with its own locks; any value is valid to pass.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BYTES as i32);
        }
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores an option's value (an atomic store);
        // mimalloc reads the purge delay each time it considers a purge.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, SWEEP_PURGE_DELAY_MS as _);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Allocator, LARGE_BYTES};
    use std::alloc::{GlobalAlloc, Layout};

    /// Writes `len` bytes of a pattern at `ptr`.
    unsafe fn fill(ptr: *mut u8, len: usize) {
        for i in 0..len {
            unsafe { ptr.add(i).write((i % 251) as u8) };
        }
    }

    /// Whether the first `len` bytes at `ptr` hold the pattern.
    unsafe fn holds(ptr: *const u8, len: usize) -> bool {
        (0..len).all(|i| unsafe { ptr.add(i).read() } == (i % 251) as u8)
    }

    #[test]
    fn a_block_keeps_its_bytes_when_resized_across_the_large_threshold() {
        let small = Layout::from_size_align(100, 8).unwrap();
        unsafe {
            let p = Allocator.alloc(small);
            assert!(!p.is_null());
            fill(p, 100);
            // Small to large: moved from mimalloc to the system allocator.
            let p = Allocator.realloc(p, small, 2 * LARGE_BYTES);
            assert!(!p.is_null());
            assert!(holds(p, 100));
            fill(p, 2 * LARGE_BYTES);
            // Large to larger stays with the system allocator.
            let large = Layout::from_size_align(2 * LARGE_BYTES, 8).unwrap();
            let p = Allocator.realloc(p, large, 3 * LARGE_BYTES);
            assert!(holds(p, 2 * LARGE_BYTES));
            // Large to small: back to mimalloc, the first bytes kept.
            let larger = Layout::from_size_align(3 * LARGE_BYTES, 8).unwrap();
            let p = Allocator.realloc(p, larger, 64);
            assert!(holds(p, 64));
            Allocator.dealloc(p, Layout::from_size_align(64, 8).unwrap());
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides_of_the_threshold() {
        for size in [64, LARGE_BYTES - 1, LARGE_BYTES, 4 * LARGE_BYTES] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            unsafe {
                let p = Allocator.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % 64, 0, "aligned as asked");
                assert!((0..size).all(|i| p.add(i).read() == 0), "{size} bytes");
                Allocator.dealloc(p, layout);
            }
        }
    }
}

//! The physical frame allocator: a bitmap over every 4 KiB frame up to the highest usable
//! address, with single-frame, 2 MiB-aligned and contiguous allocations.
//!
//! Invariant: a bit is clear exactly when its frame is usable RAM that nobody holds. Frames
//! outside usable regions are set from the start and never freed.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{PageSize, PhysAddr, SIZE_2M, SIZE_4K, is_aligned};

const FRAMES_PER_2M: usize = (SIZE_2M / SIZE_4K) as usize;

/// Why a frame operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The address is not aligned to the size.
    Misaligned(PhysAddr),
    /// The range is beyond the memory the allocator tracks.
    OutOfRange(PhysAddr),
    /// A frame being freed was not allocated.
    NotAllocated(PhysAddr),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Misaligned(a) => write!(f, "frame address {:#x} is misaligned", a.0),
            FrameError::OutOfRange(a) => write!(f, "frame address {:#x} is out of range", a.0),
            FrameError::NotAllocated(a) => write!(f, "frame {:#x} was not allocated", a.0),
        }
    }
}

/// Frame counts for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Usable frames the allocator manages.
    pub total: u64,
    /// Of those, frames free now.
    pub free: u64,
}

impl FrameStats {
    /// Frames held by someone.
    pub fn used(&self) -> u64 {
        self.total - self.free
    }
}

/// A bitmap frame allocator.
#[derive(Debug)]
pub struct FrameAllocator {
    /// One bit per frame; set = not available.
    bits: Vec<u64>,
    frames: usize,
    total: u64,
    free: u64,
    /// Where the next single-frame search starts (a word index).
    hint: usize,
}

impl FrameAllocator {
    /// An allocator for physical addresses below `limit`, with nothing usable yet.
    pub fn new(limit: PhysAddr) -> Self {
        let frames = limit.0.div_ceil(SIZE_4K) as usize;
        let words = frames.div_ceil(64);
        Self {
            bits: vec![u64::MAX; words],
            frames,
            total: 0,
            free: 0,
            hint: 0,
        }
    }

    /// Marks the whole frames inside `[start, end)` as usable and free.
    pub fn add_usable(&mut self, start: PhysAddr, end: PhysAddr) {
        let first = start.0.div_ceil(SIZE_4K) as usize;
        let last = ((end.0 / SIZE_4K) as usize).min(self.frames);
        for frame in first..last {
            if self.is_set(frame) {
                self.clear(frame);
                self.total += 1;
                self.free += 1;
            }
        }
    }

    /// Takes the frames overlapping `[start, end)` out of the free pool for good (the heap,
    /// low memory, firmware holes the map got wrong). They count as used.
    pub fn reserve(&mut self, start: PhysAddr, end: PhysAddr) {
        let first = (start.0 / SIZE_4K) as usize;
        let last = (end.0.div_ceil(SIZE_4K) as usize).min(self.frames);
        for frame in first..last {
            if !self.is_set(frame) {
                self.set(frame);
                self.free -= 1;
            }
        }
    }

    /// Counts for reports.
    pub fn stats(&self) -> FrameStats {
        FrameStats {
            total: self.total,
            free: self.free,
        }
    }

    /// Allocates one frame of `size`, aligned to its size.
    pub fn alloc(&mut self, size: PageSize) -> Option<PhysAddr> {
        match size {
            PageSize::Size4K => self.alloc_4k(),
            PageSize::Size2M => self.alloc_contiguous(FRAMES_PER_2M, FRAMES_PER_2M),
        }
    }

    fn alloc_4k(&mut self) -> Option<PhysAddr> {
        let words = self.bits.len();
        for step in 0..words {
            let w = (self.hint + step) % words;
            let word = self.bits[w];
            if word != u64::MAX {
                let bit = (!word).trailing_zeros() as usize;
                let frame = w * 64 + bit;
                if frame >= self.frames {
                    continue;
                }
                self.set(frame);
                self.free -= 1;
                self.hint = w;
                return Some(PhysAddr(frame as u64 * SIZE_4K));
            }
        }
        None
    }

    /// Allocates `count` contiguous frames starting at a multiple of `align_frames` frames.
    pub fn alloc_contiguous(&mut self, count: usize, align_frames: usize) -> Option<PhysAddr> {
        if count == 0 || align_frames == 0 || !align_frames.is_power_of_two() {
            return None;
        }
        let mut start = 0;
        while start + count <= self.frames {
            match (start..start + count).rev().find(|f| self.is_set(*f)) {
                None => {
                    for f in start..start + count {
                        self.set(f);
                    }
                    self.free -= count as u64;
                    return Some(PhysAddr(start as u64 * SIZE_4K));
                }
                // Skip past the used frame, to the next aligned start.
                Some(used) => start = (used + 1).next_multiple_of(align_frames),
            }
        }
        None
    }

    /// Returns a frame of `size` allocated earlier.
    pub fn free(&mut self, addr: PhysAddr, size: PageSize) -> Result<(), FrameError> {
        self.free_contiguous(addr, (size.bytes() / SIZE_4K) as usize)
    }

    /// Returns `count` contiguous frames allocated earlier.
    pub fn free_contiguous(&mut self, addr: PhysAddr, count: usize) -> Result<(), FrameError> {
        if !is_aligned(addr.0, SIZE_4K) {
            return Err(FrameError::Misaligned(addr));
        }
        let first = (addr.0 / SIZE_4K) as usize;
        if first + count > self.frames {
            return Err(FrameError::OutOfRange(addr));
        }
        if let Some(f) = (first..first + count).find(|f| !self.is_set(*f)) {
            return Err(FrameError::NotAllocated(PhysAddr(f as u64 * SIZE_4K)));
        }
        for f in first..first + count {
            self.clear(f);
        }
        self.free += count as u64;
        Ok(())
    }

    fn is_set(&self, frame: usize) -> bool {
        self.bits[frame / 64] & (1 << (frame % 64)) != 0
    }

    fn set(&mut self, frame: usize) {
        self.bits[frame / 64] |= 1 << (frame % 64);
    }

    fn clear(&mut self, frame: usize) {
        self.bits[frame / 64] &= !(1 << (frame % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const MIB: u64 = 1024 * 1024;

    fn alloc_with(ranges: &[(u64, u64)], limit: u64) -> FrameAllocator {
        let mut a = FrameAllocator::new(PhysAddr(limit));
        for (s, e) in ranges {
            a.add_usable(PhysAddr(*s), PhysAddr(*e));
        }
        a
    }

    #[test]
    fn counts_only_whole_usable_frames() {
        let a = alloc_with(&[(0x1000, 0x3800), (0x10_0000, 0x20_0000)], 4 * MIB);
        assert_eq!(a.stats().total, 2 + 256);
        assert_eq!(a.stats().free, 2 + 256);
    }

    #[test]
    fn single_frames_are_unique_and_usable() {
        let mut a = alloc_with(&[(MIB, 2 * MIB), (3 * MIB, 3 * MIB + 0x4000)], 4 * MIB);
        let mut seen = HashSet::new();
        while let Some(f) = a.alloc(PageSize::Size4K) {
            assert!(seen.insert(f.0));
            assert!((MIB..2 * MIB).contains(&f.0) || (3 * MIB..3 * MIB + 0x4000).contains(&f.0));
        }
        assert_eq!(seen.len(), 256 + 4);
        assert_eq!(a.stats().free, 0);
        for f in seen {
            a.free(PhysAddr(f), PageSize::Size4K).unwrap();
        }
        assert_eq!(a.stats().free, 260);
    }

    #[test]
    fn large_frames_are_aligned_and_whole() {
        // Usable from 1 MiB to 7 MiB: only [2,4) and [4,6) MiB are whole aligned 2 MiB frames.
        let mut a = alloc_with(&[(MIB, 7 * MIB)], 8 * MIB);
        let x = a.alloc(PageSize::Size2M).unwrap();
        let y = a.alloc(PageSize::Size2M).unwrap();
        assert_eq!((x.0, y.0), (2 * MIB, 4 * MIB));
        assert_eq!(a.alloc(PageSize::Size2M), None);
        a.free(x, PageSize::Size2M).unwrap();
        assert_eq!(a.alloc(PageSize::Size2M), Some(x));
    }

    #[test]
    fn a_used_frame_blocks_a_large_frame() {
        let mut a = alloc_with(&[(0, 4 * MIB)], 4 * MIB);
        a.reserve(PhysAddr(0x1000), PhysAddr(0x2000));
        assert_eq!(a.alloc(PageSize::Size2M), Some(PhysAddr(2 * MIB)));
        assert_eq!(a.alloc(PageSize::Size2M), None);
    }

    #[test]
    fn double_free_and_bad_frees_are_errors() {
        let mut a = alloc_with(&[(0, MIB)], MIB);
        let f = a.alloc(PageSize::Size4K).unwrap();
        a.free(f, PageSize::Size4K).unwrap();
        assert_eq!(
            a.free(f, PageSize::Size4K),
            Err(FrameError::NotAllocated(f))
        );
        assert_eq!(
            a.free(PhysAddr(0x10), PageSize::Size4K),
            Err(FrameError::Misaligned(PhysAddr(0x10)))
        );
        assert!(matches!(
            a.free(PhysAddr(2 * MIB), PageSize::Size4K),
            Err(FrameError::OutOfRange(_))
        ));
    }

    #[test]
    fn reserve_counts_as_used() {
        let mut a = alloc_with(&[(0, MIB)], MIB);
        a.reserve(PhysAddr(0), PhysAddr(0x8000));
        assert_eq!(a.stats().free, 256 - 8);
        assert_eq!(a.stats().used(), 8);
        let f = a.alloc(PageSize::Size4K).unwrap();
        assert!(f.0 >= 0x8000);
    }

    #[test]
    fn contiguous_runs() {
        let mut a = alloc_with(&[(0, MIB)], MIB);
        a.reserve(PhysAddr(0x3000), PhysAddr(0x4000));
        let r = a.alloc_contiguous(4, 1).unwrap();
        assert_eq!(r.0, 0x4000);
        assert_eq!(a.alloc_contiguous(0, 1), None);
        assert_eq!(a.alloc_contiguous(2, 3), None);
        a.free_contiguous(r, 4).unwrap();
    }
}

//! The physical frame allocator: a bitmap over every 4 KiB frame up to the highest usable
//! address, with single-frame, 2 MiB-aligned and contiguous allocations, anywhere or only
//! inside a set of physical ranges (a NUMA node's memory).
//!
//! Invariant: a bit is clear exactly when its frame is usable RAM that nobody holds. Frames
//! outside usable regions are set from the start and never freed.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{PageSize, PhysAddr, PhysRange, SIZE_2M, SIZE_4K, is_aligned};

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

    /// One past the highest physical address the allocator tracks.
    pub fn limit(&self) -> PhysAddr {
        PhysAddr(self.frames as u64 * SIZE_4K)
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

    /// Allocates one frame of `size`, aligned to its size, lying wholly inside one of `ranges`.
    pub fn alloc_in(&mut self, size: PageSize, ranges: &[PhysRange]) -> Option<PhysAddr> {
        let count = (size.bytes() / SIZE_4K) as usize;
        ranges.iter().find_map(|r| {
            let (first, last) = self.frames_within(r);
            match size {
                PageSize::Size4K => self.alloc_4k_between(first, last),
                PageSize::Size2M => self.alloc_contiguous_between(count, count, first, last),
            }
        })
    }

    /// Free frames wholly inside `ranges` (ranges that overlap count their common frames twice).
    pub fn free_in(&self, ranges: &[PhysRange]) -> u64 {
        ranges
            .iter()
            .map(|r| {
                let (first, last) = self.frames_within(r);
                (first..last).filter(|f| !self.is_set(*f)).count() as u64
            })
            .sum()
    }

    /// The frame numbers `[first, last)` wholly inside `r` and tracked by the allocator.
    fn frames_within(&self, r: &PhysRange) -> (usize, usize) {
        let first = r.start.0.div_ceil(SIZE_4K).min(self.frames as u64) as usize;
        let last = (r.end.0 / SIZE_4K).min(self.frames as u64) as usize;
        (first, last.max(first))
    }

    fn alloc_4k_between(&mut self, first: usize, last: usize) -> Option<PhysAddr> {
        let mut frame = first;
        while frame < last {
            let w = frame / 64;
            // Free bits of this word at or after `frame`.
            let free = !self.bits[w] & (u64::MAX << (frame % 64));
            if free != 0 {
                let found = w * 64 + free.trailing_zeros() as usize;
                if found >= last {
                    return None;
                }
                self.set(found);
                self.free -= 1;
                return Some(PhysAddr(found as u64 * SIZE_4K));
            }
            frame = (w + 1) * 64;
        }
        None
    }

    /// Allocates `count` contiguous frames starting at a multiple of `align_frames` frames.
    pub fn alloc_contiguous(&mut self, count: usize, align_frames: usize) -> Option<PhysAddr> {
        self.alloc_contiguous_between(count, align_frames, 0, self.frames)
    }

    /// Like `alloc_contiguous`, with every frame inside `[first, last)`.
    fn alloc_contiguous_between(
        &mut self,
        count: usize,
        align_frames: usize,
        first: usize,
        last: usize,
    ) -> Option<PhysAddr> {
        if count == 0 || align_frames == 0 || !align_frames.is_power_of_two() {
            return None;
        }
        let mut start = first.next_multiple_of(align_frames);
        while start + count <= last {
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
    fn range(start: u64, end: u64) -> PhysRange {
        PhysRange {
            start: PhysAddr(start),
            end: PhysAddr(end),
        }
    }

    #[test]
    fn allocation_inside_ranges_stays_inside() {
        // Two "nodes": [0, 8) MiB and [8, 16) MiB; node 1's frames are all usable.
        let mut a = alloc_with(&[(0, 16 * MIB)], 16 * MIB);
        let node1 = [range(8 * MIB, 16 * MIB)];
        assert_eq!(a.free_in(&node1), 2048);
        let mut seen = HashSet::new();
        while let Some(f) = a.alloc_in(PageSize::Size4K, &node1) {
            assert!((8 * MIB..16 * MIB).contains(&f.0), "{:#x}", f.0);
            assert!(seen.insert(f.0));
        }
        assert_eq!(seen.len(), 2048);
        assert_eq!(a.free_in(&node1), 0);
        // Node 0 is untouched.
        assert_eq!(a.free_in(&[range(0, 8 * MIB)]), 2048);
        assert_eq!(a.stats().free, 2048);
        assert_eq!(a.alloc_in(PageSize::Size2M, &node1), None);
        for f in seen {
            a.free(PhysAddr(f), PageSize::Size4K).unwrap();
        }
        assert_eq!(a.free_in(&node1), 2048);
    }

    #[test]
    fn ranges_with_unaligned_and_unusable_edges() {
        // Usable [1 MiB, 6 MiB); the node is [0x1800, 5 MiB + 0x800): only whole frames count,
        // and frames outside the usable map never come out.
        let mut a = alloc_with(&[(MIB, 6 * MIB)], 6 * MIB);
        let node = [range(0x1800, 5 * MIB + 0x800)];
        assert_eq!(a.free_in(&node), 4 * 256);
        let f = a.alloc_in(PageSize::Size4K, &node).unwrap();
        assert_eq!(f, PhysAddr(MIB));
        // 2 MiB frames: [2,4) MiB fits, [4,6) does not end inside the node.
        assert_eq!(a.alloc_in(PageSize::Size2M, &node), Some(PhysAddr(2 * MIB)));
        assert_eq!(a.alloc_in(PageSize::Size2M, &node), None);
        // A range beyond the tracked memory, or empty, or reversed, yields nothing.
        assert_eq!(
            a.alloc_in(PageSize::Size4K, &[range(64 * MIB, 65 * MIB)]),
            None
        );
        assert_eq!(
            a.alloc_in(PageSize::Size4K, &[range(3 * MIB, 3 * MIB)]),
            None
        );
        assert_eq!(
            a.alloc_in(PageSize::Size4K, &[range(5 * MIB, 4 * MIB)]),
            None
        );
        assert_eq!(a.free_in(&[range(5 * MIB, 4 * MIB)]), 0);
        assert_eq!(a.alloc_in(PageSize::Size4K, &[]), None);
    }

    #[test]
    fn later_ranges_are_used_when_earlier_ones_are_full() {
        let mut a = alloc_with(&[(0, 8 * MIB)], 8 * MIB);
        let ranges = [range(0, 0x2000), range(6 * MIB, 8 * MIB)];
        let got: Vec<u64> = (0..3)
            .map(|_| a.alloc_in(PageSize::Size4K, &ranges).unwrap().0)
            .collect();
        assert_eq!(got, vec![0, 0x1000, 6 * MIB]);
        // The only 2 MiB frame inside the ranges, [6, 8) MiB, holds a 4 KiB frame.
        assert_eq!(a.alloc_in(PageSize::Size2M, &ranges), None);
        a.free(PhysAddr(6 * MIB), PageSize::Size4K).unwrap();
        assert_eq!(
            a.alloc_in(PageSize::Size2M, &ranges),
            Some(PhysAddr(6 * MIB))
        );
    }
}

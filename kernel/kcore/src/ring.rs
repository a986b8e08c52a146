//! A fixed-size single-producer single-consumer byte ring built from atomics: an interrupt
//! handler pushes, one consumer pops, and neither ever blocks or allocates.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Bytes the ring holds (one slot stays empty to tell full from empty).
pub const RING_BYTES: usize = 1024;

/// The ring. `push` must only be called by one producer at a time and `pop` by one consumer.
#[derive(Debug)]
pub struct ByteRing {
    buf: [AtomicU8; RING_BYTES],
    head: AtomicUsize,
    tail: AtomicUsize,
    dropped: AtomicUsize,
}

impl Default for ByteRing {
    fn default() -> Self {
        Self::new()
    }
}

impl ByteRing {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            buf: [const { AtomicU8::new(0) }; RING_BYTES],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Adds a byte; returns false (and counts it) when the ring is full.
    pub fn push(&self, byte: u8) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        let next = (head + 1) % RING_BYTES;
        if next == self.tail.load(Ordering::Acquire) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.buf[head].store(byte, Ordering::Relaxed);
        self.head.store(next, Ordering::Release);
        true
    }

    /// Takes the oldest byte.
    pub fn pop(&self) -> Option<u8> {
        let tail = self.tail.load(Ordering::Relaxed);
        if tail == self.head.load(Ordering::Acquire) {
            return None;
        }
        let byte = self.buf[tail].load(Ordering::Relaxed);
        self.tail.store((tail + 1) % RING_BYTES, Ordering::Release);
        Some(byte)
    }

    /// Whether no byte is waiting.
    pub fn is_empty(&self) -> bool {
        self.tail.load(Ordering::Acquire) == self.head.load(Ordering::Acquire)
    }

    /// Bytes refused because the ring was full.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_wraparound() {
        let r = ByteRing::new();
        for round in 0..5u32 {
            for i in 0..700u32 {
                assert!(r.push((i + round) as u8));
            }
            for i in 0..700u32 {
                assert_eq!(r.pop(), Some((i + round) as u8));
            }
            assert!(r.is_empty());
        }
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let r = ByteRing::new();
        for i in 0..RING_BYTES - 1 {
            assert!(r.push(i as u8));
        }
        assert!(!r.push(1));
        assert_eq!(r.dropped(), 1);
        assert_eq!(r.pop(), Some(0));
    }
}

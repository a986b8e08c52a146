//! Typed addresses and page sizes.

use core::fmt;

/// Bytes in a small page.
pub const SIZE_4K: u64 = 4096;
/// Bytes in a large page.
pub const SIZE_2M: u64 = 2 * 1024 * 1024;

/// A physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(pub u64);

/// A virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(pub u64);

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl VirtAddr {
    /// Whether bits 63..47 are copies of bit 47, as x86-64 requires.
    pub fn is_canonical(self) -> bool {
        let top = self.0 >> 47;
        top == 0 || top == 0x1_ffff
    }

    /// The page-table index at `level` (4 = PML4 ... 1 = PT).
    pub fn table_index(self, level: u8) -> usize {
        ((self.0 >> (12 + 9 * (u64::from(level) - 1))) & 0x1ff) as usize
    }
}

/// The two page sizes atoll maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// 4 KiB, mapped by a level-1 entry.
    Size4K,
    /// 2 MiB, mapped by a level-2 entry with the huge bit.
    Size2M,
}

impl PageSize {
    /// The page size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => SIZE_4K,
            PageSize::Size2M => SIZE_2M,
        }
    }

    /// The page-table level whose entry maps a page of this size.
    pub const fn leaf_level(self) -> u8 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
        }
    }

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            PageSize::Size4K => "4K",
            PageSize::Size2M => "2M",
        }
    }
}

/// Whether `value` is a multiple of `align` (a power of two).
pub const fn is_aligned(value: u64, align: u64) -> bool {
    value & (align - 1) == 0
}

/// One half-open physical range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: PhysAddr,
    /// One past the last byte.
    pub end: PhysAddr,
}

impl PhysRange {
    /// Its size in bytes.
    pub fn bytes(&self) -> u64 {
        self.end.0 - self.start.0
    }

    /// Whether `pa` lies inside.
    pub fn contains(&self, pa: PhysAddr) -> bool {
        self.start.0 <= pa.0 && pa.0 < self.end.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical() {
        assert!(VirtAddr(0x0000_7fff_ffff_f000).is_canonical());
        assert!(VirtAddr(0xffff_8000_0000_0000).is_canonical());
        assert!(!VirtAddr(0x0000_8000_0000_0000).is_canonical());
        assert!(!VirtAddr(0xdead_beef_0000_0000).is_canonical());
    }

    #[test]
    fn indices() {
        let va = VirtAddr((3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123);
        assert_eq!(va.table_index(4), 3);
        assert_eq!(va.table_index(3), 5);
        assert_eq!(va.table_index(2), 7);
        assert_eq!(va.table_index(1), 9);
    }
}

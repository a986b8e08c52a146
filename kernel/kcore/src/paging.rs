//! Four-level x86-64 page tables as pure logic: map, unmap, re-protect and translate 4 KiB and
//! 2 MiB pages through any physical-memory accessor.
//!
//! The kernel supplies the accessor (its direct map of physical memory) and does the TLB flush
//! after each change; tests supply a simulated physical memory. W^X is enforced here: a
//! [`Protection`] that is both writable and executable is refused by every operation.
//!
//! Intermediate entries are kept permissive (present, writable, executable) so the leaf alone
//! decides a page's rights.

use core::fmt;

use crate::addr::{PageSize, PhysAddr, SIZE_4K, VirtAddr, is_aligned};

/// A page-table entry with named bits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pte(pub u64);

impl Pte {
    /// The entry maps something / points to a table.
    pub const PRESENT: u64 = 1 << 0;
    /// Writes allowed.
    pub const WRITABLE: u64 = 1 << 1;
    /// User-mode access allowed (atoll never sets it).
    pub const USER: u64 = 1 << 2;
    /// Level 2/3: the entry maps a large page.
    pub const HUGE: u64 = 1 << 7;
    /// Write-through caching (PWT).
    pub const WRITE_THROUGH: u64 = 1 << 3;
    /// Caching disabled (PCD).
    pub const CACHE_DISABLE: u64 = 1 << 4;
    /// Not flushed on CR3 reload.
    pub const GLOBAL: u64 = 1 << 8;
    /// Instruction fetches fault (needs EFER.NXE).
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// The physical-address bits of a 4 KiB leaf or a table pointer.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
    /// The physical-address bits of a 2 MiB leaf (bit 12 is PAT there).
    pub const ADDR_MASK_2M: u64 = 0x000f_ffff_ffe0_0000;
    /// The physical-address bits of a 1 GiB leaf.
    pub const ADDR_MASK_1G: u64 = 0x000f_ffff_c000_0000;

    fn has(self, bit: u64) -> bool {
        self.0 & bit != 0
    }
}

impl fmt::Debug for Pte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pte({:#018x})", self.0)
    }
}

/// What a mapping allows besides reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub exec: bool,
}

impl Protection {
    /// Read only.
    pub const READ: Self = Self {
        write: false,
        exec: false,
    };
    /// Read and write, never execute.
    pub const READ_WRITE: Self = Self {
        write: true,
        exec: false,
    };
    /// Read and execute, never write.
    pub const READ_EXEC: Self = Self {
        write: false,
        exec: true,
    };

    /// A short name for reports: `r--`, `rw-`, `r-x` (or `rwx`, which is never mapped).
    pub fn name(self) -> &'static str {
        match (self.write, self.exec) {
            (false, false) => "r--",
            (true, false) => "rw-",
            (false, true) => "r-x",
            (true, true) => "rwx",
        }
    }

    fn leaf_bits(self) -> u64 {
        let mut bits = Pte::PRESENT;
        if self.write {
            bits |= Pte::WRITABLE;
        }
        if !self.exec {
            bits |= Pte::NO_EXECUTE;
        }
        bits
    }
}

/// Why a page-table operation was refused. Nothing was changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// W^X: a mapping may be writable or executable, never both.
    WritableAndExecutable,
    /// The virtual or physical address is not aligned to the page size.
    Misaligned,
    /// The virtual address is not canonical.
    NonCanonical(VirtAddr),
    /// Something is already mapped there.
    AlreadyMapped(VirtAddr),
    /// Nothing is mapped there.
    NotMapped(VirtAddr),
    /// A page of another size covers the address.
    SizeMismatch(VirtAddr),
    /// No frame was left for a new page table.
    OutOfTableFrames,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::WritableAndExecutable => {
                write!(
                    f,
                    "refused: a page may be writable or executable, not both (W^X)"
                )
            }
            MapError::Misaligned => write!(f, "address not aligned to the page size"),
            MapError::NonCanonical(v) => write!(f, "{:#x} is not a canonical address", v.0),
            MapError::AlreadyMapped(v) => write!(f, "{:#x} is already mapped", v.0),
            MapError::NotMapped(v) => write!(f, "{:#x} is not mapped", v.0),
            MapError::SizeMismatch(v) => write!(f, "{:#x} is mapped with another page size", v.0),
            MapError::OutOfTableFrames => write!(f, "out of frames for page tables"),
        }
    }
}

/// Access to physical memory, one 64-bit word at a time.
pub trait PhysMem {
    /// Reads the word at `pa` (8-byte aligned).
    fn read(&self, pa: PhysAddr) -> u64;
    /// Writes the word at `pa` (8-byte aligned).
    fn write(&mut self, pa: PhysAddr, value: u64);
}

/// A source of frames for new page tables.
pub trait TableFrames {
    /// A 4 KiB frame, or `None` when memory is exhausted. Its contents need not be zero.
    fn alloc_table(&mut self) -> Option<PhysAddr>;
}

/// Where a virtual address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The physical address (with the page offset applied).
    pub phys: PhysAddr,
    /// The size of the page that maps it, in bytes (4 KiB, 2 MiB or 1 GiB).
    pub page_bytes: u64,
    /// Its rights.
    pub protection: Protection,
}

/// A handle on one address space (one PML4) for page-table edits.
#[derive(Debug)]
pub struct Mapper<'m, M: PhysMem> {
    mem: &'m mut M,
    root: PhysAddr,
}

impl<'m, M: PhysMem> Mapper<'m, M> {
    /// The address space whose PML4 is at `root`.
    pub fn new(mem: &'m mut M, root: PhysAddr) -> Self {
        Self { mem, root }
    }

    fn entry_addr(table: PhysAddr, index: usize) -> PhysAddr {
        PhysAddr(table.0 + 8 * index as u64)
    }

    fn check(va: VirtAddr, size: PageSize) -> Result<(), MapError> {
        if !va.is_canonical() {
            return Err(MapError::NonCanonical(va));
        }
        if !is_aligned(va.0, size.bytes()) {
            return Err(MapError::Misaligned);
        }
        Ok(())
    }

    /// Maps `va` to `pa` as one page of `size` with `prot`.
    pub fn map(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        size: PageSize,
        prot: Protection,
        frames: &mut impl TableFrames,
    ) -> Result<(), MapError> {
        if prot.write && prot.exec {
            return Err(MapError::WritableAndExecutable);
        }
        self.map_leaf(va, pa, size, prot.leaf_bits(), frames)
    }

    /// Maps one 4 KiB page of device registers (MMIO) at `va`: read-write, never executable,
    /// uncached (PCD and PWT set), so every access reaches the device in program order.
    pub fn map_device(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        frames: &mut impl TableFrames,
    ) -> Result<(), MapError> {
        let bits = Protection::READ_WRITE.leaf_bits() | Pte::CACHE_DISABLE | Pte::WRITE_THROUGH;
        self.map_leaf(va, pa, PageSize::Size4K, bits, frames)
    }

    fn map_leaf(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        size: PageSize,
        leaf_bits: u64,
        frames: &mut impl TableFrames,
    ) -> Result<(), MapError> {
        Self::check(va, size)?;
        if !is_aligned(pa.0, size.bytes()) {
            return Err(MapError::Misaligned);
        }
        let mut table = self.root;
        for level in (size.leaf_level() + 1..=4).rev() {
            let slot = Self::entry_addr(table, va.table_index(level));
            let entry = Pte(self.mem.read(slot));
            if !entry.has(Pte::PRESENT) {
                let new = frames.alloc_table().ok_or(MapError::OutOfTableFrames)?;
                for i in 0..512 {
                    self.mem.write(Self::entry_addr(new, i), 0);
                }
                self.mem.write(slot, new.0 | Pte::PRESENT | Pte::WRITABLE);
                table = new;
                continue;
            }
            if entry.has(Pte::HUGE) {
                return Err(if level == 2 || level == 3 {
                    MapError::AlreadyMapped(va)
                } else {
                    MapError::SizeMismatch(va)
                });
            }
            // Keep the upper levels permissive so the leaf alone decides.
            let widened = (entry.0 | Pte::WRITABLE) & !Pte::NO_EXECUTE;
            if widened != entry.0 {
                self.mem.write(slot, widened);
            }
            table = PhysAddr(entry.0 & Pte::ADDR_MASK);
        }
        let slot = Self::entry_addr(table, va.table_index(size.leaf_level()));
        let leaf = Pte(self.mem.read(slot));
        if leaf.has(Pte::PRESENT) {
            return Err(if size == PageSize::Size2M && !leaf.has(Pte::HUGE) {
                MapError::SizeMismatch(va)
            } else {
                MapError::AlreadyMapped(va)
            });
        }
        let huge = if size == PageSize::Size2M {
            Pte::HUGE
        } else {
            0
        };
        self.mem.write(slot, pa.0 | leaf_bits | huge);
        Ok(())
    }

    /// Finds the leaf slot that maps `va` as a page of exactly `size`.
    fn leaf_slot(&self, va: VirtAddr, size: PageSize) -> Result<PhysAddr, MapError> {
        Self::check(va, size)?;
        let mut table = self.root;
        for level in (1..=4).rev() {
            let slot = Self::entry_addr(table, va.table_index(level));
            let entry = Pte(self.mem.read(slot));
            if !entry.has(Pte::PRESENT) {
                return Err(MapError::NotMapped(va));
            }
            let is_leaf = level == 1 || entry.has(Pte::HUGE);
            if is_leaf {
                return if level == size.leaf_level() {
                    Ok(slot)
                } else {
                    Err(MapError::SizeMismatch(va))
                };
            }
            if level == size.leaf_level() {
                return Err(MapError::SizeMismatch(va));
            }
            table = PhysAddr(entry.0 & Pte::ADDR_MASK);
        }
        Err(MapError::NotMapped(va))
    }

    /// Removes the page of `size` at `va`; returns the frame it mapped. The caller flushes the TLB.
    pub fn unmap(&mut self, va: VirtAddr, size: PageSize) -> Result<PhysAddr, MapError> {
        let slot = self.leaf_slot(va, size)?;
        let entry = self.mem.read(slot);
        self.mem.write(slot, 0);
        let mask = match size {
            PageSize::Size4K => Pte::ADDR_MASK,
            PageSize::Size2M => Pte::ADDR_MASK_2M,
        };
        Ok(PhysAddr(entry & mask))
    }

    /// Changes the rights of the page of `size` at `va`. The caller flushes the TLB.
    pub fn protect(
        &mut self,
        va: VirtAddr,
        size: PageSize,
        prot: Protection,
    ) -> Result<(), MapError> {
        if prot.write && prot.exec {
            return Err(MapError::WritableAndExecutable);
        }
        let slot = self.leaf_slot(va, size)?;
        let entry = self.mem.read(slot);
        let cleared = entry & !(Pte::PRESENT | Pte::WRITABLE | Pte::NO_EXECUTE);
        self.mem.write(slot, cleared | prot.leaf_bits());
        Ok(())
    }

    /// Where `va` leads, if anywhere.
    pub fn translate(&self, va: VirtAddr) -> Option<Translation> {
        if !va.is_canonical() {
            return None;
        }
        let mut table = self.root;
        let mut write = true;
        let mut exec = true;
        for level in (1..=4u8).rev() {
            let entry = Pte(self
                .mem
                .read(Self::entry_addr(table, va.table_index(level))));
            if !entry.has(Pte::PRESENT) {
                return None;
            }
            write &= entry.has(Pte::WRITABLE);
            exec &= !entry.has(Pte::NO_EXECUTE);
            let (is_leaf, mask, bytes) = match level {
                1 => (true, Pte::ADDR_MASK, SIZE_4K),
                2 => (entry.has(Pte::HUGE), Pte::ADDR_MASK_2M, 1 << 21),
                3 => (entry.has(Pte::HUGE), Pte::ADDR_MASK_1G, 1 << 30),
                _ => (false, 0, 0),
            };
            if is_leaf {
                return Some(Translation {
                    phys: PhysAddr((entry.0 & mask) + (va.0 & (bytes - 1))),
                    page_bytes: bytes,
                    protection: Protection { write, exec },
                });
            }
            table = PhysAddr(entry.0 & Pte::ADDR_MASK);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::SIZE_2M;
    use std::collections::HashMap;

    /// Physical memory as a sparse map of words; unwritten words read as a fill pattern, so a
    /// table the mapper forgot to zero shows up as garbage.
    struct SimMem {
        words: HashMap<u64, u64>,
    }

    impl SimMem {
        fn new() -> Self {
            Self {
                words: HashMap::new(),
            }
        }
    }

    impl PhysMem for SimMem {
        fn read(&self, pa: PhysAddr) -> u64 {
            assert_eq!(pa.0 % 8, 0);
            *self.words.get(&pa.0).unwrap_or(&0xdead_dead_dead_dead)
        }
        fn write(&mut self, pa: PhysAddr, value: u64) {
            self.words.insert(pa.0, value);
        }
    }

    struct Frames(u64, usize);
    impl TableFrames for Frames {
        fn alloc_table(&mut self) -> Option<PhysAddr> {
            if self.1 == 0 {
                return None;
            }
            self.1 -= 1;
            self.0 += SIZE_4K;
            Some(PhysAddr(self.0))
        }
    }

    fn setup() -> (SimMem, Frames, PhysAddr) {
        let mut mem = SimMem::new();
        let root = PhysAddr(0x1000);
        for i in 0..512 {
            mem.write(PhysAddr(root.0 + 8 * i), 0);
        }
        (mem, Frames(0x10_0000, 100), root)
    }

    #[test]
    fn device_pages_are_uncached_and_never_executable() {
        let (mut mem, mut frames, root) = setup();
        let va = VirtAddr(0xffff_ff00_0000_0000);
        let mut m = Mapper::new(&mut mem, root);
        m.map_device(va, PhysAddr(0xfee0_0000), &mut frames)
            .unwrap();
        let t = m.translate(va).unwrap();
        assert_eq!(t.phys, PhysAddr(0xfee0_0000));
        assert!(t.protection.write && !t.protection.exec);
        let slot = m.leaf_slot(va, PageSize::Size4K).unwrap();
        let pte = Pte(mem.read(slot));
        assert!(pte.has(Pte::CACHE_DISABLE) && pte.has(Pte::WRITE_THROUGH));
    }

    #[test]
    fn map_translate_unmap_4k() {
        let (mut mem, mut frames, root) = setup();
        let mut m = Mapper::new(&mut mem, root);
        let va = VirtAddr(0xffff_9000_0000_5000);
        m.map(
            va,
            PhysAddr(0x7000),
            PageSize::Size4K,
            Protection::READ_WRITE,
            &mut frames,
        )
        .unwrap();
        let t = m.translate(VirtAddr(va.0 + 0x123)).unwrap();
        assert_eq!(t.phys, PhysAddr(0x7123));
        assert_eq!(t.page_bytes, SIZE_4K);
        assert_eq!(t.protection, Protection::READ_WRITE);
        assert_eq!(frames.1, 97, "three new tables");
        assert_eq!(m.unmap(va, PageSize::Size4K), Ok(PhysAddr(0x7000)));
        assert_eq!(m.translate(va), None);
        assert_eq!(m.unmap(va, PageSize::Size4K), Err(MapError::NotMapped(va)));
    }

    #[test]
    fn map_2m_and_protect() {
        let (mut mem, mut frames, root) = setup();
        let mut m = Mapper::new(&mut mem, root);
        let va = VirtAddr(0x4000_0000);
        m.map(
            va,
            PhysAddr(4 * SIZE_2M),
            PageSize::Size2M,
            Protection::READ_WRITE,
            &mut frames,
        )
        .unwrap();
        let t = m.translate(VirtAddr(va.0 + SIZE_2M - 1)).unwrap();
        assert_eq!(t.phys, PhysAddr(5 * SIZE_2M - 1));
        assert_eq!(t.page_bytes, SIZE_2M);
        m.protect(va, PageSize::Size2M, Protection::READ_EXEC)
            .unwrap();
        assert_eq!(m.translate(va).unwrap().protection, Protection::READ_EXEC);
        // The huge page blocks a 4K mapping inside it, and the 4K view of it.
        assert_eq!(
            m.map(
                VirtAddr(va.0 + SIZE_4K),
                PhysAddr(0),
                PageSize::Size4K,
                Protection::READ,
                &mut frames
            ),
            Err(MapError::AlreadyMapped(VirtAddr(va.0 + SIZE_4K)))
        );
        assert_eq!(
            m.unmap(va, PageSize::Size4K),
            Err(MapError::SizeMismatch(va))
        );
        assert_eq!(m.unmap(va, PageSize::Size2M), Ok(PhysAddr(4 * SIZE_2M)));
    }

    #[test]
    fn wx_is_refused_everywhere() {
        let (mut mem, mut frames, root) = setup();
        let mut m = Mapper::new(&mut mem, root);
        let rwx = Protection {
            write: true,
            exec: true,
        };
        let va = VirtAddr(0x20_0000);
        assert_eq!(
            m.map(va, PhysAddr(0), PageSize::Size4K, rwx, &mut frames),
            Err(MapError::WritableAndExecutable)
        );
        assert_eq!(m.translate(va), None, "nothing was changed");
        m.map(
            va,
            PhysAddr(0),
            PageSize::Size4K,
            Protection::READ_EXEC,
            &mut frames,
        )
        .unwrap();
        assert_eq!(
            m.protect(va, PageSize::Size4K, rwx),
            Err(MapError::WritableAndExecutable)
        );
        assert_eq!(m.translate(va).unwrap().protection, Protection::READ_EXEC);
    }

    #[test]
    fn refusals() {
        let (mut mem, mut frames, root) = setup();
        let mut m = Mapper::new(&mut mem, root);
        let rw = Protection::READ_WRITE;
        assert_eq!(
            m.map(
                VirtAddr(0x1001),
                PhysAddr(0),
                PageSize::Size4K,
                rw,
                &mut frames
            ),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            m.map(
                VirtAddr(0x20_0000),
                PhysAddr(0x1000),
                PageSize::Size2M,
                rw,
                &mut frames
            ),
            Err(MapError::Misaligned)
        );
        let bad = VirtAddr(0x0000_8000_0000_0000);
        assert_eq!(
            m.map(bad, PhysAddr(0), PageSize::Size4K, rw, &mut frames),
            Err(MapError::NonCanonical(bad))
        );
        m.map(
            VirtAddr(0x1000),
            PhysAddr(0),
            PageSize::Size4K,
            rw,
            &mut frames,
        )
        .unwrap();
        assert_eq!(
            m.map(
                VirtAddr(0x1000),
                PhysAddr(0),
                PageSize::Size4K,
                rw,
                &mut frames
            ),
            Err(MapError::AlreadyMapped(VirtAddr(0x1000)))
        );
        // A 2M mapping over a table of 4K pages is a size mismatch.
        assert_eq!(
            m.map(VirtAddr(0), PhysAddr(0), PageSize::Size2M, rw, &mut frames),
            Err(MapError::SizeMismatch(VirtAddr(0)))
        );
        let mut none = Frames(0, 0);
        assert_eq!(
            m.map(
                VirtAddr(0x80_0000_0000),
                PhysAddr(0),
                PageSize::Size4K,
                rw,
                &mut none
            ),
            Err(MapError::OutOfTableFrames)
        );
    }

    #[test]
    fn upper_levels_widened_for_leaf_rights() {
        let (mut mem, mut frames, root) = setup();
        // A PML4 entry that is read-only and no-execute, as a bootloader may leave one.
        let table = PhysAddr(0x9000);
        for i in 0..512 {
            mem.write(PhysAddr(table.0 + 8 * i), 0);
        }
        mem.write(root, table.0 | Pte::PRESENT | Pte::NO_EXECUTE);
        let mut m = Mapper::new(&mut mem, root);
        m.map(
            VirtAddr(0x3000),
            PhysAddr(0x5000),
            PageSize::Size4K,
            Protection::READ_EXEC,
            &mut frames,
        )
        .unwrap();
        assert_eq!(
            m.translate(VirtAddr(0x3000)).unwrap().protection,
            Protection::READ_EXEC
        );
    }
}

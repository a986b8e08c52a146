//! Facts about this boot that commands report: the ramdisk (chunk image), boot-time figures,
//! and how many cores run.

use spin::Once;

use crate::{println, time};

/// The chunk image the bootloader loaded as ramdisk.
#[derive(Debug, Clone, Copy)]
pub struct Ramdisk {
    /// Virtual address (mapped by the bootloader, read-only to us by convention).
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// FNV-1a 64 of the whole image, to compare with the host file.
    pub fnv1a: u64,
}

/// TSC readings taken on the way to the prompt.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootFigures {
    /// TSC at kernel entry (cycles since reset: firmware and bootloader).
    pub entry_tsc: u64,
    /// TSC when the prompt was first printed.
    pub prompt_tsc: u64,
}

static RAMDISK: Once<Option<(Ramdisk, &'static [u8])>> = Once::new();
static BOOT: Once<BootFigures> = Once::new();

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Records the ramdisk the bootloader loaded (see `arch::bootinfo::ramdisk`).
pub fn set_ramdisk(bytes: Option<&'static [u8]>) {
    RAMDISK.call_once(|| {
        let bytes = bytes?;
        let ramdisk = Ramdisk {
            addr: bytes.as_ptr() as u64,
            len: bytes.len() as u64,
            fnv1a: fnv1a(bytes),
        };
        Some((ramdisk, bytes))
    });
}

/// The ramdisk, if there is one.
pub fn ramdisk() -> Option<Ramdisk> {
    RAMDISK.get().copied().flatten().map(|(r, _)| r)
}

/// The ramdisk's bytes, if there is one.
pub fn ramdisk_bytes() -> Option<&'static [u8]> {
    RAMDISK.get().copied().flatten().map(|(_, bytes)| bytes)
}

/// Records that the prompt is about to be printed.
pub fn mark_ready() {
    BOOT.call_once(|| BootFigures {
        entry_tsc: time::entry_tsc(),
        prompt_tsc: crate::arch::cpu::rdtsc(),
    });
}

/// The boot figures (zero before `mark_ready`).
pub fn boot_figures() -> BootFigures {
    BOOT.get().copied().unwrap_or_default()
}

/// Prints the boot-time line(s) host tools look for.
pub fn print_boot_line() {
    let b = boot_figures();
    println!(
        "boot: ready in {} cycles since reset ({} cycles in kernel)",
        b.prompt_tsc,
        b.prompt_tsc - b.entry_tsc
    );
    if time::icount() {
        println!(
            "boot: ready in {} guest instructions since reset",
            time::cycles_to_instructions(b.prompt_tsc)
        );
    }
}

/// Cores running kernel code.
pub fn online_cores() -> u32 {
    crate::smp::online_count().max(1)
}

//! QEMU's fw_cfg device, read-only: lets the host pass facts (e.g. "TSC counts guest
//! instructions") that the guest cannot otherwise know. Only probed under a hypervisor.

use super::cpu::cpuid;
use super::port::IoPort;

// Both ports are touched only under a hypervisor (where they are QEMU's fw_cfg or unclaimed),
// files are read only after the QEMU signature answered, and neither writes guest memory (the
// DMA interface is not used).
// SAFETY: fw_cfg's selector port, used as described above.
const SELECTOR: IoPort<u16> = unsafe { IoPort::new(0x510) };
// SAFETY: fw_cfg's data port, used as described above.
const DATA: IoPort<u8> = unsafe { IoPort::new(0x511) };
const SEL_SIGNATURE: u16 = 0x0000;
const SEL_FILE_DIR: u16 = 0x0019;
/// Bytes of one file-directory entry: size (4), select (2), reserved (2), name (56).
const DIR_ENTRY_BYTES: usize = 64;

fn under_hypervisor() -> bool {
    cpuid(1, 0).2 & (1 << 31) != 0
}

fn select(sel: u16) {
    SELECTOR.write(sel);
}

fn read_bytes(buf: &mut [u8]) {
    for b in buf {
        *b = DATA.read();
    }
}

fn present() -> bool {
    if !under_hypervisor() {
        return false;
    }
    select(SEL_SIGNATURE);
    let mut sig = [0u8; 4];
    read_bytes(&mut sig);
    &sig == b"QEMU"
}

/// Reads the fw_cfg file `name` into `buf`; returns its length (truncated to `buf`), or `None`
/// when there is no fw_cfg or no such file.
pub fn read_file(name: &str, buf: &mut [u8]) -> Option<usize> {
    if !present() {
        return None;
    }
    select(SEL_FILE_DIR);
    let mut count = [0u8; 4];
    read_bytes(&mut count);
    let count = u32::from_be_bytes(count);
    for _ in 0..count.min(4096) {
        let mut entry = [0u8; DIR_ENTRY_BYTES];
        read_bytes(&mut entry);
        let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
        let sel = u16::from_be_bytes([entry[4], entry[5]]);
        let raw_name = &entry[8..];
        let len = raw_name
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(raw_name.len());
        if &raw_name[..len] == name.as_bytes() {
            select(sel);
            let n = size.min(buf.len());
            read_bytes(&mut buf[..n]);
            return Some(n);
        }
    }
    None
}

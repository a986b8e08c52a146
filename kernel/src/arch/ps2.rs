//! The i8042 PS/2 controller's keyboard port (also the legacy emulation most PCs offer for USB
//! keyboards). The controller is set to raise IRQ 1 for each byte and to translate the
//! keyboard's scancodes to set 1.

use super::port::IoPort;

/// The keyboard's ISA interrupt line.
pub const KEYBOARD_ISA_IRQ: u8 = 1;

/// Status: a byte waits in the output buffer (for us).
const OUTPUT_FULL: u8 = 1 << 0;
/// Status: the controller has not taken our last byte yet.
const INPUT_FULL: u8 = 1 << 1;
/// Status: the waiting byte came from the auxiliary (mouse) port.
const AUX_DATA: u8 = 1 << 5;
/// Controller commands.
const READ_CONFIG: u8 = 0x20;
const WRITE_CONFIG: u8 = 0x60;
const ENABLE_KEYBOARD_PORT: u8 = 0xae;
/// Configuration bits.
const CONFIG_KEYBOARD_IRQ: u8 = 1 << 0;
const CONFIG_KEYBOARD_CLOCK_OFF: u8 = 1 << 4;
const CONFIG_TRANSLATE: u8 = 1 << 6;
/// Polls before giving up on the controller (each an I/O read, about a microsecond).
const WAIT_POLLS: u32 = 100_000;

struct Ports {
    data: IoPort<u8>,
    control: IoPort<u8>,
}

fn ports() -> Ports {
    // SAFETY: 0x60 and 0x64 are the i8042's data and status/command ports, driven only here;
    // the controller does no DMA, and the only command that touches more than the keyboard,
    // a system reset (0xfe), is never sent.
    unsafe {
        Ports {
            data: IoPort::new(0x60),
            control: IoPort::new(0x64),
        }
    }
}

fn wait(p: &Ports, ready: impl Fn(u8) -> bool) -> bool {
    (0..WAIT_POLLS).any(|_| ready(p.control.read()))
}

/// Finds and programs the controller; false when there is none (the status port floats at
/// 0xff) or it does not answer.
pub fn init() -> bool {
    let p = ports();
    if p.control.read() == 0xff {
        return false;
    }
    // Drop whatever the firmware left in the buffer.
    for _ in 0..64 {
        if p.control.read() & OUTPUT_FULL == 0 {
            break;
        }
        let _ = p.data.read();
    }
    if !wait(&p, |s| s & INPUT_FULL == 0) {
        return false;
    }
    p.control.write(READ_CONFIG);
    if !wait(&p, |s| s & OUTPUT_FULL != 0) {
        return false;
    }
    let config =
        (p.data.read() | CONFIG_KEYBOARD_IRQ | CONFIG_TRANSLATE) & !CONFIG_KEYBOARD_CLOCK_OFF;
    if !wait(&p, |s| s & INPUT_FULL == 0) {
        return false;
    }
    p.control.write(WRITE_CONFIG);
    if !wait(&p, |s| s & INPUT_FULL == 0) {
        return false;
    }
    p.data.write(config);
    if !wait(&p, |s| s & INPUT_FULL == 0) {
        return false;
    }
    p.control.write(ENABLE_KEYBOARD_PORT);
    true
}

/// The next keyboard byte, if one waits (mouse bytes are read and dropped).
pub fn read_scancode() -> Option<u8> {
    let p = ports();
    loop {
        let status = p.control.read();
        if status & OUTPUT_FULL == 0 || status == 0xff {
            return None;
        }
        let byte = p.data.read();
        if status & AUX_DATA == 0 {
            return Some(byte);
        }
    }
}

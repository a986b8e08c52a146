//! Keyboard input: IRQ 1 (through the I/O APIC) reads the PS/2 controller, decodes scancode
//! set 1 into terminal bytes (`atoll_kcore::scancode`) and puts them in the console's receive
//! ring, where the shell's line editor takes them like bytes from the serial line.

use core::sync::atomic::{AtomicBool, Ordering};

use atoll_kcore::scancode::Set1Decoder;
use spin::Mutex;

use crate::arch::ps2;

static PRESENT: AtomicBool = AtomicBool::new(false);
/// Only the keyboard interrupt handler (one core) decodes.
static DECODER: Mutex<Set1Decoder> = Mutex::new(Set1Decoder::new());

/// Programs the PS/2 controller; returns whether there is one.
pub fn init() -> bool {
    let ok = ps2::init();
    PRESENT.store(ok, Ordering::Release);
    ok
}

/// Whether a PS/2 keyboard controller was found.
pub fn present() -> bool {
    PRESENT.load(Ordering::Acquire)
}

/// Decodes every waiting scancode; `push` takes the typed bytes.
pub fn drain(mut push: impl FnMut(u8)) {
    let mut decoder = DECODER.lock();
    while let Some(code) = ps2::read_scancode() {
        decoder.feed(code, &mut push);
    }
}

//! Console input: the COM1 receive interrupt drains the UART, and the keyboard interrupt the
//! PS/2 controller, into one ring, and wakes the shell, which sleeps (blocked, its core in
//! `hlt`) while nothing has arrived. Both interrupts go to the boot core, so the ring has one
//! producer at a time.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use atoll_kcore::ring::ByteRing;

use super::out;
use crate::arch::apic;
use crate::arch::trap::{Resume, TrapFrame};
use crate::arch::vectors::Vector;
use crate::sched;

static RX: ByteRing = ByteRing::new();
static SHELL: AtomicUsize = AtomicUsize::new(usize::MAX);
static IRQ_DRIVEN: AtomicBool = AtomicBool::new(false);

/// Installs the receive handler, records the shell's thread, and enables the interrupt.
pub fn init_irq(shell_slot: usize) {
    SHELL.store(shell_slot, Ordering::Release);
    crate::arch::trap::set_switch_handler(Vector::Serial as u8, on_serial);
    crate::arch::trap::set_switch_handler(Vector::Keyboard as u8, on_keyboard);
    IRQ_DRIVEN.store(true, Ordering::Release);
    out::enable_rx_interrupt();
}

fn drain() {
    while let Some(b) = out::try_read_byte() {
        RX.push(b);
    }
}

fn on_serial(frame: &mut TrapFrame) -> Resume {
    drain();
    wake_shell(frame)
}

fn on_keyboard(frame: &mut TrapFrame) -> Resume {
    super::keyboard::drain(|b| {
        RX.push(b);
    });
    wake_shell(frame)
}

fn wake_shell(frame: &mut TrapFrame) -> Resume {
    apic::eoi();
    let shell = SHELL.load(Ordering::Acquire);
    if shell != usize::MAX && sched::wake_from_irq(shell) {
        return sched::switch_from_irq(frame);
    }
    Resume::same(frame)
}

/// Waits for the next input byte: blocked on the receive interrupt when it is set up,
/// polling otherwise.
pub fn read_byte() -> u8 {
    loop {
        if let Some(b) = RX.pop() {
            return b;
        }
        if IRQ_DRIVEN.load(Ordering::Acquire) {
            // Only the interrupt handler drains the UART (the ring has one producer); bytes
            // already waiting when the interrupt was enabled raise it at once.
            sched::block_unless(|| !RX.is_empty());
        } else if let Some(b) = out::try_read_byte() {
            return b;
        } else if super::keyboard::present() {
            super::keyboard::drain(|b| {
                RX.push(b);
            });
        } else {
            core::hint::spin_loop();
        }
    }
}

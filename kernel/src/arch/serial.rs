//! COM1, the console's transport: a 16550 UART driven by the `uart_16550` crate.
//!
//! Output is polled (the transmitter is fast enough for a console); input arrives by interrupt
//! (received-data-available, one byte at a time) once [`enable_rx_interrupt`] is called.
//!
//! Normal use takes the port's lock with interrupts off ([`locked`]). Fault and panic reports use
//! [`emergency`], which waits only briefly for the lock and then writes through a second handle:
//! a report must come out even when the faulting code held the lock.

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::{FifoTriggerLevel, IER};
use uart_16550::{BaudRate, Config, Uart16550};

/// COM1's base I/O port.
const COM1_BASE: u16 = 0x3f8;
/// COM1's ISA interrupt line (before any MADT override).
pub const COM1_ISA_IRQ: u8 = 4;

/// How many times [`emergency`] tries the lock before writing around it.
const EMERGENCY_LOCK_TRIES: u32 = 1_000_000;

/// The console UART.
#[derive(Debug)]
pub struct Com1 {
    uart: Uart16550<PioBackend>,
}

/// A handle on COM1's registers. Private: this module makes one for the lock and, only when a
/// report cannot get the lock, a second one (see [`emergency`]).
const fn com1() -> Com1 {
    // SAFETY: 0x3f8..0x3ff are COM1's registers, which only this module drives; UART registers
    // touch no memory. A second handle only interleaves bytes with the first.
    match unsafe { Uart16550::new_port(COM1_BASE) } {
        Ok(uart) => Com1 { uart },
        Err(_) => panic!("COM1's registers fit in the I/O space"),
    }
}

static COM1: Mutex<Com1> = Mutex::new(com1());

/// Whether COM1 answered the presence check at [`init`]. Without it nothing is sent or read:
/// waiting for an absent transmitter to drain would hang a PC that has no serial port.
static PRESENT: AtomicBool = AtomicBool::new(false);

impl Com1 {
    /// Sends `bytes`, waiting for room in the transmitter.
    pub fn send(&mut self, bytes: &[u8]) {
        self.uart.send_bytes_exact(bytes);
    }

    /// Takes one received byte, if any.
    pub fn try_receive(&mut self) -> Option<u8> {
        self.uart.try_receive_byte().ok()
    }
}

/// Programs 115200 baud, 8N1, FIFOs on and cleared (an interrupt per received byte: a console
/// wants each keystroke at once), DTR/RTS/OUT2 set, interrupts off. Call once, first thing.
pub fn init() {
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        fifo_trigger_level: Some(FifoTriggerLevel::One),
        interrupts: IER::empty(),
        ..Config::DEFAULT
    };
    // A UART that fails the presence check (its scratch register does not hold a value) is
    // left alone for good.
    let ok = locked(|com1| com1.uart.init(config)).is_ok();
    PRESENT.store(ok, Ordering::Release);
}

/// Whether COM1 exists (it passed the presence check at [`init`]).
pub fn present() -> bool {
    PRESENT.load(Ordering::Acquire)
}

/// Runs `f` on COM1 under its lock, with interrupts held off so a handler on this core cannot
/// deadlock on the lock.
pub fn locked<R>(f: impl FnOnce(&mut Com1) -> R) -> R {
    super::cpu::without_interrupts(|| f(&mut COM1.lock()))
}

/// Runs `f` on COM1 for a fault report: under the lock if it comes free soon, otherwise
/// through a second handle, because the holder is stuck (it is the interrupted code on this
/// core) and cannot run again while the report is written.
pub fn emergency<R>(f: impl FnOnce(&mut Com1) -> R) -> R {
    for _ in 0..EMERGENCY_LOCK_TRIES {
        if let Some(mut com1) = COM1.try_lock() {
            return f(&mut com1);
        }
        core::hint::spin_loop();
    }
    f(&mut com1())
}

/// Raises an interrupt whenever received data is available.
pub fn enable_rx_interrupt() {
    if !present() {
        return;
    }
    locked(|com1| com1.uart.enable_interrupts(IER::DATA_READY));
}

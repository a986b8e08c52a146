//! Console output on COM1, shared by the shell, the logger and fault reports.
//!
//! Normal output takes the UART lock. Fault and panic reports use [`emergency_writer`], which
//! waits only briefly for the lock and then writes anyway: a report must come out even when
//! the faulting code held the lock.

use core::fmt::{self, Write};

use spin::Mutex;

use crate::arch::serial::{COM1_BASE, Uart16550};

// SAFETY: COM1 is the console UART and only this module drives its output.
static UART: Mutex<Uart16550> = Mutex::new(unsafe { Uart16550::new(COM1_BASE) });

/// Programs the UART. Call once, first thing at boot.
pub fn init() {
    UART.lock().init();
}

/// Writes text, turning `\n` into `\r\n`.
struct Writer<'a>(&'a mut Uart16550);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.send(b'\r');
            }
            self.0.send(b);
        }
        Ok(())
    }
}

/// Prints formatted text (interrupts held off so a handler on this core cannot deadlock on the
/// lock).
pub fn print_fmt(args: fmt::Arguments<'_>) {
    crate::arch::cpu::without_interrupts(|| {
        let mut uart = UART.lock();
        let _ = Writer(&mut uart).write_fmt(args);
    });
}

/// Sends raw bytes (terminal control from the line editor) without newline translation.
pub fn write_raw(bytes: &[u8]) {
    crate::arch::cpu::without_interrupts(|| {
        let mut uart = UART.lock();
        for b in bytes {
            uart.send(*b);
        }
    });
}

/// Takes one received byte, if any.
pub fn try_read_byte() -> Option<u8> {
    crate::arch::cpu::without_interrupts(|| UART.lock().try_receive())
}

/// Turns on the receive interrupt.
pub fn enable_rx_interrupt() {
    crate::arch::cpu::without_interrupts(|| UART.lock().enable_rx_interrupt());
}

/// A writer for fault reports that never deadlocks.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    for _ in 0..1_000_000 {
        if let Some(mut uart) = UART.try_lock() {
            let _ = Writer(&mut uart).write_fmt(args);
            return;
        }
        core::hint::spin_loop();
    }
    // The lock holder is stuck (it is the interrupted code on this core): write around it.
    // SAFETY: a second handle on COM1 only interleaves bytes with the stuck holder, which
    // cannot run again while we report.
    let mut uart = unsafe { Uart16550::new(COM1_BASE) };
    let _ = Writer(&mut uart).write_fmt(args);
}

/// `print!` to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::out::print_fmt(format_args!($($arg)*)) };
}

/// `println!` to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::out::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to the console without ever blocking for long (fault reports).
#[macro_export]
macro_rules! eprintln {
    ($($arg:tt)*) => { $crate::console::out::emergency_print(format_args!("{}\n", format_args!($($arg)*))) };
}

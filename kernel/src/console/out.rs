//! Console output on COM1 and the screen (the same bytes to both, when both exist), shared by
//! the shell, the logger and fault reports.
//!
//! Normal output takes the UART lock. Fault and panic reports use [`emergency_print`], which
//! waits only briefly for the lock and then writes anyway: a report must come out even when
//! the faulting code held the lock (see `arch::serial`).

use core::fmt::{self, Write};

use crate::arch::serial::{self, Com1};

use super::screen;

/// Writes text to the screen (the screen console starts each `\n` line at its left edge).
struct ScreenWriter {
    emergency: bool,
}

impl Write for ScreenWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.emergency {
            screen::write_emergency(s.as_bytes());
        } else {
            screen::write(s.as_bytes());
        }
        Ok(())
    }
}

/// Programs the UART. Call once, first thing at boot.
pub fn init() {
    serial::init();
}

/// Writes text, turning `\n` into `\r\n`.
struct Writer<'a>(&'a mut Com1);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(text) => {
                    self.0.send(text.as_bytes());
                    self.0.send(b"\r\n");
                }
                None => self.0.send(line.as_bytes()),
            }
        }
        Ok(())
    }
}

/// Prints formatted text (interrupts held off so a handler on this core cannot deadlock on the
/// lock).
pub fn print_fmt(args: fmt::Arguments<'_>) {
    if serial::present() {
        serial::locked(|com1| {
            let _ = Writer(com1).write_fmt(args);
        });
    }
    let _ = ScreenWriter { emergency: false }.write_fmt(args);
}

/// Sends raw bytes (terminal control from the line editor) without newline translation.
pub fn write_raw(bytes: &[u8]) {
    if serial::present() {
        serial::locked(|com1| com1.send(bytes));
    }
    screen::write(bytes);
}

/// Takes one received byte, if any.
pub fn try_read_byte() -> Option<u8> {
    if !serial::present() {
        return None;
    }
    serial::locked(Com1::try_receive)
}

/// Turns on the receive interrupt.
pub fn enable_rx_interrupt() {
    serial::enable_rx_interrupt();
}

/// A writer for fault reports that never deadlocks.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    if serial::present() {
        serial::emergency(|com1| {
            let _ = Writer(com1).write_fmt(args);
        });
    }
    let _ = ScreenWriter { emergency: true }.write_fmt(args);
}

/// Which consoles this machine has.
#[derive(Debug, Clone, Copy)]
pub struct Consoles {
    /// COM1 answered its presence check.
    pub serial: bool,
    /// The bootloader's framebuffer is a text console.
    pub screen: bool,
    /// A PS/2 keyboard feeds the line editor.
    pub keyboard: bool,
}

/// The consoles in use.
pub fn consoles() -> Consoles {
    Consoles {
        serial: serial::present(),
        screen: screen::present(),
        keyboard: super::keyboard::present(),
    }
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

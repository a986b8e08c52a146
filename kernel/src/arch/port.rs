//! Typed x86 I/O ports.

use core::arch::asm;
use core::marker::PhantomData;

/// A value that can move through an I/O port.
pub trait PortValue: Copy {
    /// # Safety
    /// Reading `port` must have no side effect that breaks memory safety.
    unsafe fn read_from(port: u16) -> Self;
    /// # Safety
    /// Writing `port` must have no side effect that breaks memory safety.
    unsafe fn write_to(port: u16, value: Self);
}

impl PortValue for u8 {
    unsafe fn read_from(port: u16) -> u8 {
        let v: u8;
        // SAFETY: the caller vouches for the port; `in` touches no memory.
        unsafe {
            asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    unsafe fn write_to(port: u16, value: u8) {
        // SAFETY: the caller vouches for the port; `out` touches no memory.
        unsafe {
            asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
        };
    }
}

impl PortValue for u16 {
    unsafe fn read_from(port: u16) -> u16 {
        let v: u16;
        // SAFETY: as for u8.
        unsafe {
            asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    unsafe fn write_to(port: u16, value: u16) {
        // SAFETY: as for u8.
        unsafe {
            asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
        };
    }
}

impl PortValue for u32 {
    unsafe fn read_from(port: u16) -> u32 {
        let v: u32;
        // SAFETY: as for u8.
        unsafe {
            asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    unsafe fn write_to(port: u16, value: u32) {
        // SAFETY: as for u8.
        unsafe {
            asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
        };
    }
}

/// An I/O port carrying values of type `T`.
#[derive(Debug, Clone, Copy)]
pub struct Port<T: PortValue> {
    number: u16,
    _t: PhantomData<T>,
}

impl<T: PortValue> Port<T> {
    /// A port by number.
    pub const fn new(number: u16) -> Self {
        Self {
            number,
            _t: PhantomData,
        }
    }

    /// Reads the port.
    ///
    /// # Safety
    /// The port must belong to a device this code owns, and reading it must not break memory safety.
    pub unsafe fn read(&self) -> T {
        // SAFETY: forwarded to the caller.
        unsafe { T::read_from(self.number) }
    }

    /// Writes the port.
    ///
    /// # Safety
    /// The port must belong to a device this code owns, and writing it must not break memory safety.
    pub unsafe fn write(&self, value: T) {
        // SAFETY: forwarded to the caller.
        unsafe { T::write_to(self.number, value) }
    }
}

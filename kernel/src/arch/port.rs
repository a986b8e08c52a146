//! I/O ports: the `x86_64` crate's `Port` behind a type that is unsafe to create and safe to use.
//!
//! Whoever makes an [`IoPort`] vouches, once, that the port belongs to a device this code drives
//! and that reading or writing it cannot break memory safety; every access after that is safe.
//! (`x86_64::instructions::port::Port` is the reverse: safe to make, unsafe at every access.)

use core::marker::PhantomData;

use x86_64::instructions::port::{Port, PortRead, PortWrite};

/// An I/O port carrying values of type `T` (`u8`, `u16` or `u32`).
#[derive(Debug, Clone, Copy)]
pub struct IoPort<T> {
    number: u16,
    _value: PhantomData<T>,
}

impl<T: PortRead + PortWrite> IoPort<T> {
    /// The port `number`.
    ///
    /// # Safety
    /// The port must belong to a device this code drives, and reading or writing it must have no
    /// effect on memory (no DMA set-up, no remapping of memory the kernel uses).
    pub const unsafe fn new(number: u16) -> Self {
        Self {
            number,
            _value: PhantomData,
        }
    }

    /// Reads the port.
    pub fn read(&self) -> T {
        // SAFETY: `new`'s contract: the port is ours and touching it cannot break memory safety.
        unsafe { Port::new(self.number).read() }
    }

    /// Writes the port.
    pub fn write(&self, value: T) {
        // SAFETY: as for `read`.
        unsafe { Port::new(self.number).write(value) }
    }
}

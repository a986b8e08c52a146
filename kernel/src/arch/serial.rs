//! The 16550 UART on COM1: the console's transport.
//!
//! Output is polled (the transmitter is fast enough for a console); input arrives by interrupt
//! (received-data-available) once `enable_rx_interrupt` is called.

use super::port::Port;

/// COM1's base I/O port.
pub const COM1_BASE: u16 = 0x3f8;

/// Line-status register bits.
mod lsr {
    pub const DATA_READY: u8 = 1 << 0;
    pub const THR_EMPTY: u8 = 1 << 5;
}

/// Interrupt-enable register bits.
mod ier {
    pub const RX_AVAILABLE: u8 = 1 << 0;
}

/// Line-control register bits.
mod lcr {
    pub const WORD_8BIT: u8 = 0b11;
    pub const DLAB: u8 = 1 << 7;
}

/// FIFO-control register bits.
mod fcr {
    pub const ENABLE: u8 = 1 << 0;
    pub const CLEAR_RX: u8 = 1 << 1;
    pub const CLEAR_TX: u8 = 1 << 2;
    /// Interrupt on every received byte (a console wants each keystroke at once).
    pub const TRIGGER_1: u8 = 0b00 << 6;
}

/// Modem-control register bits.
mod mcr {
    pub const DTR: u8 = 1 << 0;
    pub const RTS: u8 = 1 << 1;
    pub const OUT2: u8 = 1 << 3;
}

/// The registers of one 16550, each a typed port.
#[derive(Debug)]
pub struct Uart16550 {
    data: Port<u8>,
    int_enable: Port<u8>,
    fifo_ctrl: Port<u8>,
    line_ctrl: Port<u8>,
    modem_ctrl: Port<u8>,
    line_status: Port<u8>,
}

impl Uart16550 {
    /// The UART at `base`.
    ///
    /// # Safety
    /// `base` must be a 16550's I/O base that nothing else drives.
    pub const unsafe fn new(base: u16) -> Self {
        Self {
            data: Port::new(base),
            int_enable: Port::new(base + 1),
            fifo_ctrl: Port::new(base + 2),
            line_ctrl: Port::new(base + 3),
            modem_ctrl: Port::new(base + 4),
            line_status: Port::new(base + 5),
        }
    }

    /// Programs 115200 baud, 8N1, FIFOs on and cleared, interrupts off.
    pub fn init(&mut self) {
        // SAFETY: `new`'s contract says these ports are ours; UART register writes touch no memory.
        unsafe {
            self.int_enable.write(0);
            self.line_ctrl.write(lcr::DLAB);
            self.data.write(1); // divisor low: 115200 / 1
            self.int_enable.write(0); // divisor high
            self.line_ctrl.write(lcr::WORD_8BIT);
            self.fifo_ctrl
                .write(fcr::ENABLE | fcr::CLEAR_RX | fcr::CLEAR_TX | fcr::TRIGGER_1);
            self.modem_ctrl.write(mcr::DTR | mcr::RTS | mcr::OUT2);
        }
    }

    fn status(&self) -> u8 {
        // SAFETY: reading LSR has no side effect beyond the UART.
        unsafe { self.line_status.read() }
    }

    /// Sends one byte, waiting for room in the transmitter.
    pub fn send(&mut self, byte: u8) {
        while self.status() & lsr::THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        // SAFETY: the transmitter is empty; writing THR sends the byte.
        unsafe { self.data.write(byte) }
    }

    /// Raises an interrupt whenever received data is available.
    pub fn enable_rx_interrupt(&mut self) {
        // SAFETY: IER bit 0 only enables the receive interrupt; the line is routed by then.
        unsafe { self.int_enable.write(ier::RX_AVAILABLE) }
    }

    /// Takes one received byte, if any.
    pub fn try_receive(&mut self) -> Option<u8> {
        if self.status() & lsr::DATA_READY == 0 {
            return None;
        }
        // SAFETY: data is ready; reading RBR pops it.
        Some(unsafe { self.data.read() })
    }
}

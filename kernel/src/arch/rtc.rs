//! The CMOS real-time clock (ports 0x70/0x71): the wall-clock date and time, read once per
//! request. The RTC may be mid-update, so the registers are read until two readings agree
//! with no update in progress.

use atoll_kcore::calendar::{DateTime, from_bcd};

use super::port::IoPort;

// SAFETY: 0x70/0x71 are the CMOS index and data ports; selecting and reading the clock
// registers has no effect on memory.
const INDEX: IoPort<u8> = unsafe { IoPort::new(0x70) };
// SAFETY: as above.
const DATA: IoPort<u8> = unsafe { IoPort::new(0x71) };

/// Clock registers.
mod reg {
    pub const SECONDS: u8 = 0x00;
    pub const MINUTES: u8 = 0x02;
    pub const HOURS: u8 = 0x04;
    pub const DAY: u8 = 0x07;
    pub const MONTH: u8 = 0x08;
    pub const YEAR: u8 = 0x09;
    pub const STATUS_A: u8 = 0x0A;
    pub const STATUS_B: u8 = 0x0B;
}
/// Status A: an update is in progress.
const UPDATE_IN_PROGRESS: u8 = 0x80;
/// Status B: values are binary (else BCD).
const BINARY: u8 = 0x04;
/// Status B: hours are 24-hour (else 12-hour with bit 7 = PM).
const HOURS_24: u8 = 0x02;

fn read(register: u8) -> u8 {
    // Bit 7 of the index keeps NMIs enabled as they were (0 = enabled).
    INDEX.write(register & 0x7F);
    DATA.read()
}

fn raw() -> [u8; 6] {
    for _ in 0..100_000 {
        if read(reg::STATUS_A) & UPDATE_IN_PROGRESS == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    [
        read(reg::SECONDS),
        read(reg::MINUTES),
        read(reg::HOURS),
        read(reg::DAY),
        read(reg::MONTH),
        read(reg::YEAR),
    ]
}

/// The current UTC date and time, or `None` if the clock reports nonsense.
pub fn now() -> Option<DateTime> {
    let mut last = raw();
    for _ in 0..8 {
        let again = raw();
        if again == last {
            break;
        }
        last = again;
    }
    let status_b = read(reg::STATUS_B);
    let [s, m, h, d, mo, y] = last;
    let pm = h & 0x80 != 0;
    let h = h & 0x7F;
    let decode = |v: u8| {
        if status_b & BINARY != 0 {
            Some(v)
        } else {
            from_bcd(v)
        }
    };
    let mut hour = decode(h)?;
    if status_b & HOURS_24 == 0 {
        hour = (hour % 12) + if pm { 12 } else { 0 };
    }
    Some(DateTime {
        year: 2000 + u16::from(decode(y)?),
        month: decode(mo)?,
        day: decode(d)?,
        hour,
        minute: decode(m)?,
        second: decode(s)?,
    })
}

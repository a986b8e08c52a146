//! The 8254 PIT, used once at boot as a known-frequency reference to measure the TSC.

use super::cpu::rdtsc;
use super::port::IoPort;

/// The PIT's input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

// Channel 2 is used by nothing else in atoll, the speaker is kept off, and none of these ports
// touches memory.
// SAFETY: the PIT's channel 2 data port, used as described above.
const CHANNEL2_DATA: IoPort<u8> = unsafe { IoPort::new(0x42) };
// SAFETY: the PIT's command port, used as described above.
const COMMAND: IoPort<u8> = unsafe { IoPort::new(0x43) };
/// Port 0x61: bit 0 gates channel 2, bit 1 routes it to the speaker, bit 5 reads its output.
// SAFETY: the system-control port; only the channel 2 gate and speaker bits are changed.
const GATE: IoPort<u8> = unsafe { IoPort::new(0x61) };

mod gate_bits {
    pub const GATE2: u8 = 1 << 0;
    pub const SPEAKER: u8 = 1 << 1;
    pub const OUT2: u8 = 1 << 5;
}

/// Channel 2, lobyte/hibyte access, mode 0 (interrupt on terminal count), binary.
const CMD_CH2_MODE0: u8 = 0b1011_0000;

/// Measures TSC ticks over `window_us` microseconds of PIT time; returns TSC Hz.
/// `None` if the PIT never counted down (no PIT on this machine).
pub fn measure_tsc_hz(window_us: u64) -> Option<u64> {
    measure_against_pit(window_us, rdtsc)
}

/// Measures how fast the counter `read` advances over `window_us` microseconds of PIT time;
/// returns its frequency in Hz. `None` if the PIT never counted down.
pub fn measure_against_pit(window_us: u64, mut read: impl FnMut() -> u64) -> Option<u64> {
    let count = (PIT_HZ * window_us / 1_000_000).clamp(1, 0xffff) as u16;
    let g = GATE.read();
    GATE.write((g & !gate_bits::SPEAKER) | gate_bits::GATE2);
    COMMAND.write(CMD_CH2_MODE0);
    CHANNEL2_DATA.write(count as u8);
    CHANNEL2_DATA.write((count >> 8) as u8);
    // Restart the count: a rising gate edge reloads it in mode 0.
    let g = GATE.read();
    GATE.write(g & !gate_bits::GATE2);
    GATE.write(g | gate_bits::GATE2);
    let start = read();
    let mut spins: u64 = 0;
    while GATE.read() & gate_bits::OUT2 == 0 {
        spins += 1;
        if spins > 200_000_000 {
            return None;
        }
        core::hint::spin_loop();
    }
    let ticks = read().wrapping_sub(start);
    Some(ticks * PIT_HZ / u64::from(count))
}

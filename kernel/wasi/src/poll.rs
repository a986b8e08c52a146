//! `poll_oneoff`: clock subscriptions (what `sleep`, `nanosleep` and `std::thread::sleep`
//! compile to) and descriptor subscriptions.
//!
//! Every descriptor of this subset is always ready: files and bytes given as standard input
//! are in memory, console output never blocks, and standard input read through
//! [`System::read_stdin`] blocks inside `fd_read` itself. So a poll with any descriptor
//! subscription answers at once (with the clocks that have already expired); a poll with only
//! clocks sleeps until the earliest one expires and reports every clock expired by then.
//!
//! Layouts (preview1): a `subscription` is 48 bytes (`userdata u64`, tag `u8` at 8, then at
//! 16 either `clock id u32`, `timeout u64` at 24, `precision u64` at 32, `flags u16` at 40, or
//! `fd u32`); an `event` is 32 bytes (`userdata u64`, `error u16` at 8, `type u8` at 10,
//! `nbytes u64` at 16, `flags u16` at 24).

use alloc::vec::Vec;

use super::{Stdin, WasiCtx};
use crate::abi::clock;
use crate::errno::Errno;
use crate::fds::Entry;
use crate::guest::Guest;

/// Size of a `subscription`.
pub const SUBSCRIPTION_BYTES: u32 = 48;
/// Size of an `event`.
pub const EVENT_BYTES: u32 = 32;

/// `eventtype` values (also the subscription tags).
const CLOCK: u8 = 0;
const FD_READ: u8 = 1;
const FD_WRITE: u8 = 2;
/// `subclockflags`: the timeout is an absolute time of the clock.
const ABSTIME: u16 = 1;

/// One decoded subscription.
enum Sub {
    /// Expires at this monotonic time (ns), or carries an error (unknown clock).
    Clock(Result<u64, Errno>),
    /// Readiness of a descriptor: `(error, nbytes)`.
    Fd(u8, Result<u64, Errno>),
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn event(userdata: u64, ty: u8, outcome: Result<u64, Errno>) -> [u8; EVENT_BYTES as usize] {
    let mut e = [0u8; EVENT_BYTES as usize];
    e[0..8].copy_from_slice(&userdata.to_le_bytes());
    let (errno, nbytes) = match outcome {
        Ok(n) => (Errno::Success, n),
        Err(err) => (err, 0),
    };
    e[8..10].copy_from_slice(&(errno.code() as u16).to_le_bytes());
    e[10] = ty;
    if ty != CLOCK {
        e[16..24].copy_from_slice(&nbytes.to_le_bytes());
    }
    e
}

impl WasiCtx {
    /// Bytes readable from `fd` without blocking (what a `FD_READ` event reports).
    fn readable(&self, fd: u32) -> Result<u64, Errno> {
        match self.fds.get(fd)? {
            Entry::File { data, pos, .. } => Ok((data.len() as u64).saturating_sub(*pos)),
            Entry::Stdin => Ok(match &self.stdin {
                Stdin::Bytes { data, pos } => data.len().saturating_sub(*pos) as u64,
                Stdin::System => 0,
            }),
            Entry::Out(_) | Entry::Dir { .. } => Err(Errno::Badf),
        }
    }

    fn writable(&self, fd: u32) -> Result<u64, Errno> {
        match self.fds.get(fd)? {
            Entry::Out(_) => Ok(0),
            Entry::File { .. } | Entry::Stdin | Entry::Dir { .. } => Err(Errno::Badf),
        }
    }

    /// The monotonic time at which a clock subscription expires.
    fn deadline(&mut self, id: u32, timeout: u64, flags: u16) -> Result<u64, Errno> {
        let now = self.sys.monotonic_ns();
        if flags & ABSTIME == 0 {
            return match id {
                clock::REALTIME
                | clock::MONOTONIC
                | clock::PROCESS_CPUTIME
                | clock::THREAD_CPUTIME => Ok(now.saturating_add(timeout)),
                _ => Err(Errno::Inval),
            };
        }
        match id {
            clock::MONOTONIC => Ok(timeout),
            clock::REALTIME => {
                let wall = self.sys.realtime_ns();
                Ok(now.saturating_add(timeout.saturating_sub(wall)))
            }
            _ => Err(Errno::Inval),
        }
    }

    pub(super) fn poll_oneoff(
        &mut self,
        g: &mut Guest<'_>,
        subs: u32,
        events: u32,
        n: u32,
        out: u32,
    ) -> Result<(), Errno> {
        if n == 0 {
            return Err(Errno::Inval);
        }
        let table = g
            .bytes(subs, n.checked_mul(SUBSCRIPTION_BYTES).ok_or(Errno::Fault)?)?
            .to_vec();
        g.bytes(events, n.checked_mul(EVENT_BYTES).ok_or(Errno::Fault)?)?;
        g.bytes(out, 4)?;
        let mut decoded = Vec::with_capacity(n as usize);
        for s in table.chunks_exact(SUBSCRIPTION_BYTES as usize) {
            let userdata = le_u64(s, 0);
            let sub = match s[8] {
                CLOCK => {
                    let flags = u16::from_le_bytes([s[40], s[41]]);
                    Sub::Clock(self.deadline(le_u32(s, 16), le_u64(s, 24), flags))
                }
                FD_READ => Sub::Fd(FD_READ, self.readable(le_u32(s, 16))),
                FD_WRITE => Sub::Fd(FD_WRITE, self.writable(le_u32(s, 16))),
                _ => return Err(Errno::Inval),
            };
            decoded.push((userdata, sub));
        }
        // Anything to report at once: descriptors (always ready) or a bad clock.
        let immediate = decoded
            .iter()
            .any(|(_, s)| matches!(s, Sub::Fd(..) | Sub::Clock(Err(_))));
        let now = self.sys.monotonic_ns();
        let earliest = decoded
            .iter()
            .filter_map(|(_, s)| match s {
                Sub::Clock(Ok(t)) => Some(*t),
                _ => None,
            })
            .min();
        let now = match earliest {
            Some(t) if !immediate && t > now => {
                self.sys.sleep_ns(t - now);
                self.sys.monotonic_ns().max(t)
            }
            _ => now,
        };
        let mut written: u32 = 0;
        for (userdata, sub) in &decoded {
            let e = match sub {
                Sub::Clock(Ok(t)) if *t <= now => event(*userdata, CLOCK, Ok(0)),
                Sub::Clock(Ok(_)) => continue,
                Sub::Clock(Err(e)) => event(*userdata, CLOCK, Err(*e)),
                Sub::Fd(ty, r) => event(*userdata, *ty, *r),
            };
            let at = written
                .checked_mul(EVENT_BYTES)
                .and_then(|off| events.checked_add(off))
                .ok_or(Errno::Fault)?;
            g.write(at, &e)?;
            written += 1;
        }
        g.write_u32(out, written)
    }
}

//! `poll_oneoff`, the environment, and pointer arithmetic at the very top of a 4 GiB memory.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use crate::tests::{E_OK, call, ctx, u32_at};
use crate::{EVENT_BYTES, Errno, Func, SUBSCRIPTION_BYTES, WasiCtx};

fn clock_sub(userdata: u64, id: u32, timeout: u64, abstime: bool) -> [u8; 48] {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = 0;
    s[16..20].copy_from_slice(&id.to_le_bytes());
    s[24..32].copy_from_slice(&timeout.to_le_bytes());
    s[40] = u8::from(abstime);
    s
}

fn fd_sub(userdata: u64, tag: u8, fd: u32) -> [u8; 48] {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = tag;
    s[16..20].copy_from_slice(&fd.to_le_bytes());
    s
}

/// `(userdata, error, type, nbytes)` of each reported event.
fn events(mem: &[u8], at: usize, n: u32) -> Vec<(u64, u16, u8, u64)> {
    (0..n as usize)
        .map(|i| {
            let e = &mem[at + i * EVENT_BYTES as usize..][..EVENT_BYTES as usize];
            (
                u64::from_le_bytes(e[0..8].try_into().unwrap()),
                u16::from_le_bytes([e[8], e[9]]),
                e[10],
                u64::from_le_bytes(e[16..24].try_into().unwrap()),
            )
        })
        .collect()
}

fn poll(c: &mut WasiCtx, mem: &mut [u8], subs: &[[u8; 48]]) -> (u32, Vec<(u64, u16, u8, u64)>) {
    for (i, s) in subs.iter().enumerate() {
        mem[i * 48..i * 48 + 48].copy_from_slice(s);
    }
    let n = subs.len() as u32;
    let e = call(c, Func::PollOneoff, mem, &[0, 512, u64::from(n), 1000]);
    if e != E_OK {
        return (e, Vec::new());
    }
    let got = u32_at(mem, 1000);
    (e, events(mem, 512, got))
}

#[test]
fn clock_subscriptions_sleep_until_the_earliest() {
    let (mut c, shared) = ctx();
    let mut mem = vec![0u8; 1024];
    // Relative 5 ms and 2 ms: one sleep of about 2 ms, only the 2 ms clock reported.
    let (e, ev) = poll(
        &mut c,
        &mut mem,
        &[
            clock_sub(7, 1, 5_000_000, false),
            clock_sub(9, 1, 2_000_000, false),
        ],
    );
    assert_eq!(e, E_OK);
    assert_eq!(ev, [(9, 0, 0, 0)]);
    let slept = shared.slept.lock().unwrap().clone();
    assert_eq!(slept.len(), 1);
    assert!((1_999_000..=2_000_000).contains(&slept[0]), "{slept:?}");
    // An absolute monotonic time already past: reported without sleeping.
    let (e, ev) = poll(&mut c, &mut mem, &[clock_sub(3, 1, 10, true)]);
    assert_eq!((e, ev), (E_OK, vec![(3, 0, 0, 0)]));
    assert_eq!(shared.slept.lock().unwrap().len(), 1);
    // An unknown clock is an event carrying EINVAL, at once.
    let (e, ev) = poll(&mut c, &mut mem, &[clock_sub(4, 99, 1_000_000, false)]);
    assert_eq!((e, ev), (E_OK, vec![(4, Errno::Inval.code() as u16, 0, 0)]));
    assert_eq!(shared.slept.lock().unwrap().len(), 1);
}

#[test]
fn descriptors_are_ready_at_once_and_bad_ones_say_so() {
    let (mut c, shared) = ctx();
    c.set_stdin_bytes(Arc::from(&b"hello"[..]));
    let mut mem = vec![0u8; 1024];
    let (e, ev) = poll(
        &mut c,
        &mut mem,
        &[
            clock_sub(1, 1, 1_000_000_000, false),
            fd_sub(2, 1, 0),
            fd_sub(3, 2, 1),
            fd_sub(4, 1, 42),
            fd_sub(5, 2, 0),
        ],
    );
    assert_eq!(e, E_OK);
    let badf = Errno::Badf.code() as u16;
    assert_eq!(
        ev,
        [(2, 0, 1, 5), (3, 0, 2, 0), (4, badf, 1, 0), (5, badf, 2, 0)]
    );
    assert!(
        shared.slept.lock().unwrap().is_empty(),
        "no sleep with a ready descriptor"
    );
}

#[test]
fn bad_poll_arguments_are_errors_not_faults() {
    let (mut c, _) = ctx();
    let mut mem = vec![0u8; 1024];
    // No subscriptions.
    assert_eq!(
        call(&mut c, Func::PollOneoff, &mut mem, &[0, 512, 0, 1000]),
        Errno::Inval.code()
    );
    // An unknown tag.
    assert_eq!(
        poll(&mut c, &mut mem, &[fd_sub(1, 9, 0)]).0,
        Errno::Inval.code()
    );
    // Subscriptions, events or the count past the end of memory.
    let n = 1u64;
    for args in [
        [1000, 0, n, 0],
        [0, 1000, n, 0],
        [0, 512, n, 1022],
        [0, 0, u64::from(u32::MAX), 0],
    ] {
        assert_eq!(
            call(&mut c, Func::PollOneoff, &mut mem, &args),
            Errno::Fault.code(),
            "{args:?}"
        );
    }
    assert_eq!(SUBSCRIPTION_BYTES, 48);
}

#[test]
fn lists_end_exactly_at_the_top_of_a_4_gib_memory() {
    // A memory of exactly 4 GiB (zero pages the OS maps lazily): the last string's NUL is the
    // memory's last byte, so the offset after it is 2^32.
    let mut mem = vec![0u8; 1 << 32];
    let (mut c, _) = ctx();
    // args "prog\0a b\0" = 9 bytes; environment "K=V\0" = 4 bytes.
    let top = (1u64 << 32) as usize;
    let (abuf, ebuf) = (top - 9, top - 4);
    assert_eq!(
        call(&mut c, Func::ArgsGet, &mut mem, &[16, abuf as u64]),
        E_OK
    );
    assert_eq!(&mem[abuf..], b"prog\0a b\0");
    assert_eq!(u32_at(&mem, 20) as usize, abuf + 5);
    assert_eq!(
        call(&mut c, Func::EnvironGet, &mut mem, &[32, ebuf as u64]),
        E_OK
    );
    assert_eq!(&mem[ebuf..], b"K=V\0");
    // One byte further up does not fit.
    assert_eq!(
        call(&mut c, Func::ArgsGet, &mut mem, &[16, abuf as u64 + 1]),
        Errno::Fault.code()
    );
}

//! The subset through [`WasiCtx::call`], on a small memory, as a program would use it.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use crate::{Errno, Exit, Func, System, Tree, WasiCtx};

/// Output and a tick counter, shared with the test (tests run with std).
#[derive(Default, Debug)]
pub(crate) struct Shared {
    bytes: std::sync::Mutex<Vec<(u32, Vec<u8>)>>,
    pub(crate) ticks: std::sync::atomic::AtomicU64,
    /// Every `sleep_ns` asked for.
    pub(crate) slept: std::sync::Mutex<Vec<u64>>,
}

#[derive(Default)]
struct Fake {
    out: Arc<Shared>,
}

impl System for Fake {
    fn monotonic_ns(&mut self) -> u64 {
        1000 + self
            .out
            .ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
    fn realtime_ns(&mut self) -> u64 {
        1_700_000_000_000_000_000
    }
    fn resolution_ns(&mut self) -> u64 {
        1
    }
    fn random(&mut self, buf: &mut [u8]) {
        buf.fill(0xAB);
    }
    fn write(&mut self, fd: u32, bytes: &[u8]) {
        self.out.bytes.lock().unwrap().push((fd, bytes.to_vec()));
    }
    fn sleep_ns(&mut self, ns: u64) {
        self.out.slept.lock().unwrap().push(ns);
        self.out
            .ticks
            .fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
    }
}

pub(crate) fn ctx() -> (WasiCtx, Arc<Shared>) {
    let fake = Fake::default();
    let out = fake.out.clone();
    let mut c = WasiCtx::new(
        vec!["prog".into(), "a b".into()],
        vec!["K=V".into()],
        Box::new(fake),
    );
    let mut tree = Tree::new();
    tree.add_file("d/f.txt", Arc::from(&b"0123456789"[..]))
        .unwrap();
    tree.add_file("g.txt", Arc::from(&b"x"[..])).unwrap();
    assert_eq!(c.preopen(".", Arc::new(tree)), Ok(3));
    (c, out)
}

pub(crate) const E_OK: u32 = 0;

pub(crate) fn call(c: &mut WasiCtx, f: Func, mem: &mut [u8], args: &[u64]) -> u32 {
    c.call(f, mem, args).expect("no exit")
}

pub(crate) fn u32_at(mem: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(mem[at..at + 4].try_into().unwrap())
}

#[test]
fn args_and_environment() {
    let (mut c, _) = ctx();
    let mut mem = vec![0u8; 256];
    assert_eq!(call(&mut c, Func::ArgsSizesGet, &mut mem, &[0, 4]), E_OK);
    assert_eq!((u32_at(&mem, 0), u32_at(&mem, 4)), (2, 9));
    assert_eq!(call(&mut c, Func::ArgsGet, &mut mem, &[16, 32]), E_OK);
    assert_eq!((u32_at(&mem, 16), u32_at(&mem, 20)), (32, 37));
    assert_eq!(&mem[32..41], b"prog\0a b\0");
    assert_eq!(call(&mut c, Func::EnvironGet, &mut mem, &[64, 80]), E_OK);
    assert_eq!(&mem[80..84], b"K=V\0");
    // The buffer would end past memory: nothing written, EFAULT.
    assert_eq!(
        call(&mut c, Func::ArgsGet, &mut mem, &[16, 250]),
        Errno::Fault.code()
    );
    assert_eq!(
        call(&mut c, Func::ArgsSizesGet, &mut mem, &[0, 254]),
        Errno::Fault.code()
    );
}

#[test]
fn fd_write_gathers_iovecs_and_checks_them() {
    let (mut c, out) = ctx();
    let mut mem = vec![0u8; 128];
    mem[64..69].copy_from_slice(b"hello");
    mem[70..72].copy_from_slice(b"!\n");
    let iovs: Vec<u8> = [64u32, 5, 70, 2]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    mem[0..16].copy_from_slice(&iovs);
    assert_eq!(call(&mut c, Func::FdWrite, &mut mem, &[1, 0, 2, 32]), E_OK);
    assert_eq!(u32_at(&mem, 32), 7);
    assert_eq!(c.stdout_bytes(), 7);
    assert_eq!(call(&mut c, Func::FdWrite, &mut mem, &[2, 0, 1, 32]), E_OK);
    let written: Vec<(u32, Vec<u8>)> = out.bytes.lock().unwrap().clone();
    assert_eq!(
        written,
        vec![
            (1, b"hello".to_vec()),
            (1, b"!\n".to_vec()),
            (2, b"hello".to_vec())
        ]
    );
    // A buffer past the end, an iovec array past the end, a bad result pointer, a bad fd.
    mem[0..8].copy_from_slice(&[120, 0, 0, 0, 9, 0, 0, 0]);
    assert_eq!(
        call(&mut c, Func::FdWrite, &mut mem, &[1, 0, 1, 32]),
        Errno::Fault.code()
    );
    assert_eq!(
        call(&mut c, Func::FdWrite, &mut mem, &[1, 124, 1, 32]),
        Errno::Fault.code()
    );
    assert_eq!(
        call(&mut c, Func::FdWrite, &mut mem, &[1, 8, 1, 126]),
        Errno::Fault.code()
    );
    assert_eq!(
        call(&mut c, Func::FdWrite, &mut mem, &[9, 8, 1, 32]),
        Errno::Badf.code()
    );
    assert_eq!(
        call(&mut c, Func::FdWrite, &mut mem, &[0, 8, 1, 32]),
        Errno::Badf.code()
    );
    assert_eq!(out.bytes.lock().unwrap().len(), 3);
}

fn open(
    c: &mut WasiCtx,
    mem: &mut [u8],
    dir: u32,
    path: &[u8],
    oflags: u64,
    rights: u64,
) -> Result<u32, u32> {
    mem[200..200 + path.len()].copy_from_slice(path);
    let e = call(
        c,
        Func::PathOpen,
        mem,
        &[
            u64::from(dir),
            0,
            200,
            path.len() as u64,
            oflags,
            rights,
            0,
            0,
            196,
        ],
    );
    if e == E_OK {
        Ok(u32_at(mem, 196))
    } else {
        Err(e)
    }
}

#[test]
fn files_open_read_seek_and_end() {
    let (mut c, _) = ctx();
    let mut mem = vec![0u8; 512];
    let fd = open(&mut c, &mut mem, 3, b"d/../d/f.txt", 0, 2).unwrap();
    assert_eq!(fd, 4);
    // Read 4 bytes, into an iovec of 4 at 100.
    mem[0..8].copy_from_slice(&[100, 0, 0, 0, 4, 0, 0, 0]);
    assert_eq!(call(&mut c, Func::FdRead, &mut mem, &[4, 0, 1, 8]), E_OK);
    assert_eq!((u32_at(&mem, 8), &mem[100..104]), (4, &b"0123"[..]));
    assert_eq!(
        call(&mut c, Func::FdSeek, &mut mem, &[4, (-2i64) as u64, 2, 16]),
        E_OK
    );
    assert_eq!(u32_at(&mem, 16), 8);
    assert_eq!(call(&mut c, Func::FdRead, &mut mem, &[4, 0, 1, 8]), E_OK);
    assert_eq!((u32_at(&mem, 8), &mem[100..102]), (2, &b"89"[..]));
    // At the end: 0 bytes, not an error; past it too.
    assert_eq!(call(&mut c, Func::FdRead, &mut mem, &[4, 0, 1, 8]), E_OK);
    assert_eq!(u32_at(&mem, 8), 0);
    assert_eq!(call(&mut c, Func::FdSeek, &mut mem, &[4, 100, 0, 16]), E_OK);
    assert_eq!(call(&mut c, Func::FdRead, &mut mem, &[4, 0, 1, 8]), E_OK);
    assert_eq!(u32_at(&mem, 8), 0);
    assert_eq!(
        call(
            &mut c,
            Func::FdSeek,
            &mut mem,
            &[4, (-1000i64) as u64, 1, 16]
        ),
        Errno::Inval.code()
    );
    assert_eq!(call(&mut c, Func::FdTell, &mut mem, &[4, 16]), E_OK);
    assert_eq!(u32_at(&mem, 16), 100);
    assert_eq!(call(&mut c, Func::FdFilestatGet, &mut mem, &[4, 300]), E_OK);
    assert_eq!((mem[316], u32_at(&mem, 332)), (4, 10));
    assert_eq!(
        call(&mut c, Func::FdWrite, &mut mem, &[4, 0, 1, 8]),
        Errno::Badf.code()
    );
    assert_eq!(call(&mut c, Func::FdClose, &mut mem, &[4]), E_OK);
    assert_eq!(
        call(&mut c, Func::FdRead, &mut mem, &[4, 0, 1, 8]),
        Errno::Badf.code()
    );
    assert_eq!(
        call(&mut c, Func::FdSeek, &mut mem, &[1, 0, 0, 16]),
        Errno::Spipe.code()
    );
}

#[test]
fn opening_is_read_only_and_confined() {
    let (mut c, _) = ctx();
    let mut mem = vec![0u8; 512];
    assert_eq!(
        open(&mut c, &mut mem, 3, b"nope", 0, 2),
        Err(Errno::Noent.code())
    );
    assert_eq!(
        open(&mut c, &mut mem, 3, b"../etc", 0, 2),
        Err(Errno::Notcapable.code())
    );
    assert_eq!(
        open(&mut c, &mut mem, 3, b"/g.txt", 0, 2),
        Err(Errno::Notcapable.code())
    );
    assert_eq!(
        open(&mut c, &mut mem, 3, b"new", 1, 2),
        Err(Errno::Rofs.code())
    );
    assert_eq!(
        open(&mut c, &mut mem, 3, b"g.txt", 0, 1 << 6),
        Err(Errno::Rofs.code())
    );
    assert_eq!(
        open(&mut c, &mut mem, 3, b"g.txt", 2, 2),
        Err(Errno::Notdir.code())
    );
    assert_eq!(
        open(&mut c, &mut mem, 1, b"g.txt", 0, 2),
        Err(Errno::Notdir.code())
    );
    let d = open(&mut c, &mut mem, 3, b"d", 2, 0).unwrap();
    assert_eq!(
        open(&mut c, &mut mem, d, b"../g.txt", 0, 2),
        Err(Errno::Notcapable.code())
    );
    assert!(open(&mut c, &mut mem, d, b"f.txt", 0, 2).is_ok());
    // Path pointer past the end of memory.
    assert_eq!(
        call(
            &mut c,
            Func::PathOpen,
            &mut mem,
            &[3, 0, 510, 8, 0, 2, 0, 0, 196]
        ),
        Errno::Fault.code()
    );
}

#[test]
fn preopens_and_readdir() {
    let (mut c, _) = ctx();
    let mut mem = vec![0u8; 512];
    assert_eq!(call(&mut c, Func::FdPrestatGet, &mut mem, &[3, 0]), E_OK);
    assert_eq!((mem[0], u32_at(&mem, 4)), (0, 1));
    assert_eq!(
        call(&mut c, Func::FdPrestatDirName, &mut mem, &[3, 8, 1]),
        E_OK
    );
    assert_eq!(mem[8], b'.');
    assert_eq!(
        call(&mut c, Func::FdPrestatGet, &mut mem, &[4, 0]),
        Errno::Badf.code()
    );
    assert_eq!(
        call(&mut c, Func::FdReaddir, &mut mem, &[3, 100, 300, 0, 8]),
        E_OK
    );
    let used = u32_at(&mem, 8) as usize;
    let mut names: Vec<String> = Vec::new();
    let mut at = 100;
    while at < 100 + used {
        let len = u32_at(&mem, at + 16) as usize;
        names.push(String::from_utf8(mem[at + 24..at + 24 + len].to_vec()).unwrap());
        at += 24 + len;
    }
    assert_eq!(names, [".", "..", "d", "g.txt"]);
    // From cookie 3, into a buffer too small for a whole entry: truncated, buffer full.
    assert_eq!(
        call(&mut c, Func::FdReaddir, &mut mem, &[3, 100, 10, 3, 8]),
        E_OK
    );
    assert_eq!(u32_at(&mem, 8), 10);
    assert_eq!(
        call(&mut c, Func::FdReaddir, &mut mem, &[3, 100, 10, 99, 8]),
        E_OK
    );
    assert_eq!(u32_at(&mem, 8), 0);
}

#[test]
fn stdin_clocks_random_exit_and_nosys() {
    let (mut c, _) = ctx();
    c.set_stdin_bytes(Arc::from(&b"abc"[..]));
    let mut mem = vec![0u8; 128];
    mem[0..16].copy_from_slice(&[100, 0, 0, 0, 2, 0, 0, 0, 110, 0, 0, 0, 8, 0, 0, 0]);
    assert_eq!(call(&mut c, Func::FdRead, &mut mem, &[0, 0, 2, 20]), E_OK);
    assert_eq!(
        (u32_at(&mem, 20), &mem[100..102], mem[110]),
        (3, &b"ab"[..], b'c')
    );
    assert_eq!(
        call(&mut c, Func::ClockTimeGet, &mut mem, &[0, 0, 24]),
        E_OK
    );
    assert_eq!(
        u64::from_le_bytes(mem[24..32].try_into().unwrap()),
        1_700_000_000_000_000_000
    );
    assert_eq!(
        call(&mut c, Func::ClockTimeGet, &mut mem, &[9, 0, 24]),
        Errno::Inval.code()
    );
    assert_eq!(
        call(&mut c, Func::ClockTimeGet, &mut mem, &[1, 0, 125]),
        Errno::Fault.code()
    );
    assert_eq!(call(&mut c, Func::RandomGet, &mut mem, &[40, 4]), E_OK);
    assert_eq!(&mem[40..44], &[0xAB; 4]);
    assert_eq!(
        call(&mut c, Func::RandomGet, &mut mem, &[120, 40]),
        Errno::Fault.code()
    );
    assert_eq!(
        call(&mut c, Func::SockAccept, &mut mem, &[0, 0, 0]),
        Errno::Nosys.code()
    );
    assert_eq!(
        call(&mut c, Func::PathUnlinkFile, &mut mem, &[3, 0, 0]),
        Errno::Rofs.code()
    );
    assert_eq!(c.call(Func::ProcExit, &mut mem, &[7]), Err(Exit(7)));
    assert_eq!(c.exit_code(), Some(7));
}

//! A program's WASI state ([`WasiCtx`]: arguments, environment, descriptors, standard input,
//! exit code) and the implementation of every function of the subset over a [`Guest`] memory.
//! What differs between the kernel and the host (clocks, randomness, where output goes) is
//! behind [`System`].

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::abi::{self, Func, clock, filetype, oflags, rights};
use crate::errno::Errno;
use crate::fds::{Entry, FdTable};
use crate::guest::Guest;
use crate::tree::{self, Node, Tree};

#[path = "poll.rs"]
pub(crate) mod poll;

/// What the environment provides.
pub trait System {
    /// Nanoseconds of a monotonic clock.
    fn monotonic_ns(&mut self) -> u64;
    /// Nanoseconds since 1970-01-01 UTC.
    fn realtime_ns(&mut self) -> u64;
    /// Resolution of the clocks in nanoseconds.
    fn resolution_ns(&mut self) -> u64;
    /// Fills `buf` with random bytes.
    fn random(&mut self, buf: &mut [u8]);
    /// Writes program output: `fd` 1 (stdout) or 2 (stderr).
    fn write(&mut self, fd: u32, bytes: &[u8]);
    /// Reads standard input when the context has no stdin bytes of its own (0 = end of file).
    fn read_stdin(&mut self, buf: &mut [u8]) -> usize {
        let _ = buf;
        0
    }
    /// Gives other threads the processor.
    fn yield_now(&mut self) {}
    /// Waits at least `ns` nanoseconds of the monotonic clock (`poll_oneoff`'s clock
    /// subscriptions). The default spins on [`System::monotonic_ns`], yielding.
    fn sleep_ns(&mut self, ns: u64) {
        let until = self.monotonic_ns().saturating_add(ns);
        while self.monotonic_ns() < until {
            self.yield_now();
        }
    }
}

/// `proc_exit` was called with this code: the program is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub u32);

/// Where standard input comes from.
#[derive(Debug, Clone)]
enum Stdin {
    /// These bytes (a file), then end of file.
    Bytes { data: Arc<[u8]>, pos: usize },
    /// [`System::read_stdin`].
    System,
}

/// One program's WASI state.
pub struct WasiCtx {
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    fds: FdTable,
    stdin: Stdin,
    sys: Box<dyn System + Send>,
    exit: Option<u32>,
    stdout_bytes: u64,
}

impl core::fmt::Debug for WasiCtx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WasiCtx")
            .field("args", &self.args.len())
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

fn arg(args: &[u64], i: usize) -> u32 {
    args.get(i).copied().unwrap_or(0) as u32
}

fn arg64(args: &[u64], i: usize) -> u64 {
    args.get(i).copied().unwrap_or(0)
}

/// Length of a NUL-terminated list's buffer, or [`Errno::Overflow`] past 4 GiB.
fn list_bytes(list: &[Vec<u8>]) -> Result<u32, Errno> {
    let n: usize = list.iter().map(|a| a.len() + 1).sum();
    u32::try_from(n).map_err(|_| Errno::Overflow)
}

impl WasiCtx {
    /// A context with `args` (`argv[0]` first) and `env` (`KEY=VALUE`), empty standard
    /// input and no preopened directory.
    pub fn new(args: Vec<String>, env: Vec<String>, sys: Box<dyn System + Send>) -> Self {
        Self {
            args: args.into_iter().map(String::into_bytes).collect(),
            env: env.into_iter().map(String::into_bytes).collect(),
            fds: FdTable::with_stdio(),
            stdin: Stdin::Bytes {
                data: Arc::from(&[][..]),
                pos: 0,
            },
            sys,
            exit: None,
            stdout_bytes: 0,
        }
    }

    /// Standard input reads `data`, then end of file.
    pub fn set_stdin_bytes(&mut self, data: Arc<[u8]>) {
        self.stdin = Stdin::Bytes { data, pos: 0 };
    }

    /// Standard input reads through [`System::read_stdin`].
    pub fn set_stdin_system(&mut self) {
        self.stdin = Stdin::System;
    }

    /// Preopens `tree` read-only under `name` (e.g. `.`); returns its descriptor.
    pub fn preopen(&mut self, name: &str, tree: Arc<Tree>) -> Result<u32, Errno> {
        self.fds.insert(Entry::Dir {
            tree,
            path: String::new(),
            preopen: Some(name.into()),
            rights: rights::DIR | rights::FILE,
        })
    }

    /// The code `proc_exit` was called with, if it was.
    pub fn exit_code(&self) -> Option<u32> {
        self.exit
    }

    /// Bytes written to standard output so far.
    pub fn stdout_bytes(&self) -> u64 {
        self.stdout_bytes
    }

    /// The environment, e.g. to take captured output back.
    pub fn system(&mut self) -> &mut (dyn System + Send) {
        self.sys.as_mut()
    }

    /// Calls `func` with raw arguments (i32 in the low 32 bits) on memory `mem`. Returns the
    /// `errno` (`None` for `proc_exit`'s no result), or [`Exit`] when the program exits.
    pub fn call(&mut self, func: Func, mem: &mut [u8], args: &[u64]) -> Result<u32, Exit> {
        let mut g = Guest::new(mem);
        let result = match func {
            Func::ProcExit => {
                let code = arg(args, 0);
                self.exit = Some(code);
                return Err(Exit(code));
            }
            Func::ArgsSizesGet => sizes(&mut g, &self.args, arg(args, 0), arg(args, 1)),
            Func::ArgsGet => list(&mut g, &self.args, arg(args, 0), arg(args, 1)),
            Func::EnvironSizesGet => sizes(&mut g, &self.env, arg(args, 0), arg(args, 1)),
            Func::EnvironGet => list(&mut g, &self.env, arg(args, 0), arg(args, 1)),
            Func::ClockResGet => self.clock_res(&mut g, arg(args, 0), arg(args, 1)),
            Func::ClockTimeGet => self.clock_time(&mut g, arg(args, 0), arg(args, 2)),
            Func::RandomGet => g
                .bytes_mut(arg(args, 0), arg(args, 1))
                .map(|buf| self.sys.random(buf)),
            Func::SchedYield => {
                self.sys.yield_now();
                Ok(())
            }
            Func::FdWrite => self.fd_write(
                &mut g,
                arg(args, 0),
                arg(args, 1),
                arg(args, 2),
                arg(args, 3),
            ),
            Func::FdRead => self.fd_read(
                &mut g,
                arg(args, 0),
                arg(args, 1),
                arg(args, 2),
                arg(args, 3),
            ),
            Func::FdClose => self.fds.close(arg(args, 0)),
            Func::FdRenumber => self.fds.renumber(arg(args, 0), arg(args, 1)),
            Func::FdSeek => self.fd_seek(
                &mut g,
                arg(args, 0),
                arg64(args, 1) as i64,
                arg(args, 2),
                arg(args, 3),
            ),
            Func::FdTell => self.fd_seek(&mut g, arg(args, 0), 0, 1, arg(args, 1)),
            Func::FdFdstatGet => self.fd_fdstat(&mut g, arg(args, 0), arg(args, 1)),
            Func::FdFilestatGet => self.fd_filestat(&mut g, arg(args, 0), arg(args, 1)),
            Func::FdPrestatGet => self.prestat(&mut g, arg(args, 0), arg(args, 1)),
            Func::FdPrestatDirName => {
                self.prestat_name(&mut g, arg(args, 0), arg(args, 1), arg(args, 2))
            }
            Func::FdReaddir => self.readdir(
                &mut g,
                arg(args, 0),
                arg(args, 1),
                arg(args, 2),
                arg64(args, 3),
                arg(args, 4),
            ),
            Func::PathOpen => self.path_open(&mut g, args),
            Func::PollOneoff => self.poll_oneoff(
                &mut g,
                arg(args, 0),
                arg(args, 1),
                arg(args, 2),
                arg(args, 3),
            ),
            Func::PathFilestatGet => self.path_filestat(
                &mut g,
                arg(args, 0),
                arg(args, 2),
                arg(args, 3),
                arg(args, 4),
            ),
            Func::FdAdvise => self.fds.get(arg(args, 0)).map(|_| ()),
            Func::PathCreateDirectory
            | Func::PathRemoveDirectory
            | Func::PathUnlinkFile
            | Func::PathRename
            | Func::PathLink
            | Func::PathSymlink => Err(Errno::Rofs),
            _ => Err(Errno::Nosys),
        };
        Ok(match result {
            Ok(()) => Errno::Success.code(),
            Err(e) => e.code(),
        })
    }

    fn clock_res(&mut self, g: &mut Guest<'_>, id: u32, out: u32) -> Result<(), Errno> {
        if id > clock::THREAD_CPUTIME {
            return Err(Errno::Inval);
        }
        let res = self.sys.resolution_ns();
        g.write_u64(out, res)
    }

    fn clock_time(&mut self, g: &mut Guest<'_>, id: u32, out: u32) -> Result<(), Errno> {
        let ns = match id {
            clock::REALTIME => self.sys.realtime_ns(),
            // The program's CPU time is stated as its wall time on the monotonic clock.
            clock::MONOTONIC | clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => {
                self.sys.monotonic_ns()
            }
            _ => return Err(Errno::Inval),
        };
        g.write_u64(out, ns)
    }

    fn fd_write(
        &mut self,
        g: &mut Guest<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        out: u32,
    ) -> Result<(), Errno> {
        let stream = match self.fds.get(fd)? {
            Entry::Out(s) => *s,
            Entry::Dir { .. } => return Err(Errno::Isdir),
            _ => return Err(Errno::Badf),
        };
        let iovs = g.iovecs(iovs, n)?;
        g.bytes(out, 4)?;
        let mut total: u32 = 0;
        for (buf, len) in iovs {
            let bytes = g.bytes(buf, len)?;
            self.sys.write(stream, bytes);
            total = total.saturating_add(len);
        }
        if stream == 1 {
            self.stdout_bytes += u64::from(total);
        }
        g.write_u32(out, total)
    }

    fn fd_read(
        &mut self,
        g: &mut Guest<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        out: u32,
    ) -> Result<(), Errno> {
        match self.fds.get(fd)? {
            Entry::Dir { .. } => return Err(Errno::Isdir),
            Entry::Out(_) => return Err(Errno::Badf),
            Entry::Stdin | Entry::File { .. } => {}
        }
        let iovs = g.iovecs(iovs, n)?;
        g.bytes(out, 4)?;
        let mut total: u32 = 0;
        for (buf, len) in iovs {
            let dst = g.bytes_mut(buf, len)?;
            let got = match self.fds.get_mut(fd)? {
                Entry::Stdin => match &mut self.stdin {
                    Stdin::Bytes { data, pos } => {
                        let src = data.get(*pos..).unwrap_or_default();
                        let k = src.len().min(dst.len());
                        dst[..k].copy_from_slice(&src[..k]);
                        *pos += k;
                        k
                    }
                    Stdin::System => self.sys.read_stdin(dst),
                },
                Entry::File { data, pos, .. } => {
                    let start = usize::try_from(*pos).unwrap_or(usize::MAX);
                    let src = data.get(start..).unwrap_or_default();
                    let k = src.len().min(dst.len());
                    dst[..k].copy_from_slice(&src[..k]);
                    *pos += k as u64;
                    k
                }
                Entry::Dir { .. } => return Err(Errno::Isdir),
                Entry::Out(_) => return Err(Errno::Badf),
            };
            total = total.saturating_add(got as u32);
            if got < len as usize {
                break;
            }
        }
        g.write_u32(out, total)
    }

    fn fd_seek(
        &mut self,
        g: &mut Guest<'_>,
        fd: u32,
        offset: i64,
        whence: u32,
        out: u32,
    ) -> Result<(), Errno> {
        let (pos, len) = match self.fds.get_mut(fd)? {
            Entry::File { data, pos, .. } => (pos, data.len() as u64),
            Entry::Dir { .. } => return Err(Errno::Isdir),
            _ => return Err(Errno::Spipe),
        };
        g.bytes(out, 8)?;
        let base = match whence {
            0 => 0,
            1 => *pos,
            2 => len,
            _ => return Err(Errno::Inval),
        };
        let new = i128::from(base) + i128::from(offset);
        let new = u64::try_from(new).map_err(|_| Errno::Inval)?;
        *pos = new;
        g.write_u64(out, new)
    }

    fn fd_fdstat(&mut self, g: &mut Guest<'_>, fd: u32, out: u32) -> Result<(), Errno> {
        let (ty, base, inheriting) = match self.fds.get(fd)? {
            Entry::Stdin => (filetype::CHARACTER_DEVICE, rights::STDIN, 0),
            Entry::Out(_) => (filetype::CHARACTER_DEVICE, rights::STDOUT, 0),
            Entry::Dir { rights, .. } => (
                filetype::DIRECTORY,
                *rights & rights::DIR,
                *rights & rights::INHERITING | rights::FD_WRITE,
            ),
            Entry::File { rights, .. } => (filetype::REGULAR_FILE, *rights, 0),
        };
        let mut stat = [0u8; abi::FDSTAT_BYTES as usize];
        stat[0] = ty;
        stat[8..16].copy_from_slice(&base.to_le_bytes());
        stat[16..24].copy_from_slice(&inheriting.to_le_bytes());
        g.write(out, &stat)
    }

    fn fd_filestat(&mut self, g: &mut Guest<'_>, fd: u32, out: u32) -> Result<(), Errno> {
        let stat = match self.fds.get(fd)? {
            Entry::Stdin | Entry::Out(_) => filestat(filetype::CHARACTER_DEVICE, 0, 0),
            Entry::Dir { path, .. } => filestat(filetype::DIRECTORY, tree::inode(path), 0),
            Entry::File { path, data, .. } => {
                filestat(filetype::REGULAR_FILE, tree::inode(path), data.len() as u64)
            }
        };
        g.write(out, &stat)
    }

    fn prestat(&mut self, g: &mut Guest<'_>, fd: u32, out: u32) -> Result<(), Errno> {
        let Entry::Dir {
            preopen: Some(name),
            ..
        } = self.fds.get(fd)?
        else {
            return Err(Errno::Badf);
        };
        let mut stat = [0u8; 8];
        stat[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
        g.write(out, &stat)
    }

    fn prestat_name(
        &mut self,
        g: &mut Guest<'_>,
        fd: u32,
        ptr: u32,
        len: u32,
    ) -> Result<(), Errno> {
        let Entry::Dir {
            preopen: Some(name),
            ..
        } = self.fds.get(fd)?
        else {
            return Err(Errno::Badf);
        };
        let name = name.as_bytes();
        if (len as usize) < name.len() {
            return Err(Errno::Nametoolong);
        }
        g.write(ptr, name)
    }

    fn dir(&self, fd: u32) -> Result<(&Arc<Tree>, &str, u64), Errno> {
        match self.fds.get(fd)? {
            Entry::Dir {
                tree, path, rights, ..
            } => Ok((tree, path, *rights)),
            _ => Err(Errno::Notdir),
        }
    }

    fn readdir(
        &mut self,
        g: &mut Guest<'_>,
        fd: u32,
        buf: u32,
        len: u32,
        cookie: u64,
        out: u32,
    ) -> Result<(), Errno> {
        let (tree, path, _) = self.dir(fd)?;
        g.bytes(buf, len)?;
        g.bytes(out, 4)?;
        let parent = path.rfind('/').map_or("", |i| &path[..i]);
        let mut entries: Vec<(String, u8, u64)> = alloc::vec![
            (".".into(), filetype::DIRECTORY, tree::inode(path)),
            ("..".into(), filetype::DIRECTORY, tree::inode(parent)),
        ];
        for (name, is_dir) in tree.children(path) {
            let full = if path.is_empty() {
                name.clone()
            } else {
                alloc::format!("{path}/{name}")
            };
            let ty = if is_dir {
                filetype::DIRECTORY
            } else {
                filetype::REGULAR_FILE
            };
            entries.push((name, ty, tree::inode(&full)));
        }
        let mut bytes = Vec::new();
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        for (i, (name, ty, ino)) in entries.iter().enumerate().skip(start) {
            if bytes.len() >= len as usize {
                break;
            }
            let mut head = [0u8; abi::DIRENT_BYTES];
            head[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            head[8..16].copy_from_slice(&ino.to_le_bytes());
            head[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            head[20] = *ty;
            bytes.extend_from_slice(&head);
            bytes.extend_from_slice(name.as_bytes());
        }
        bytes.truncate(len as usize);
        g.write(buf, &bytes)?;
        g.write_u32(out, bytes.len() as u32)
    }

    fn path_open(&mut self, g: &mut Guest<'_>, args: &[u64]) -> Result<(), Errno> {
        let (fd, path_ptr, path_len, oflags) =
            (arg(args, 0), arg(args, 2), arg(args, 3), arg(args, 4));
        let (want, out) = (arg64(args, 5), arg(args, 8));
        let (tree, base, dir_rights) = self.dir(fd)?;
        let (tree, base) = (tree.clone(), String::from(base));
        let path = g.bytes(path_ptr, path_len)?.to_vec();
        g.bytes(out, 4)?;
        if dir_rights & rights::PATH_OPEN == 0 {
            return Err(Errno::Notcapable);
        }
        let resolved = tree.resolve(&base, &path);
        if oflags & (oflags::CREAT | oflags::TRUNC | oflags::EXCL) != 0
            || want & rights::FD_WRITE != 0
        {
            return Err(match resolved {
                Ok(_) if oflags & oflags::EXCL != 0 => Errno::Exist,
                _ => Errno::Rofs,
            });
        }
        let (path, node) = resolved?;
        let entry = match node {
            Node::Dir => Entry::Dir {
                tree,
                path,
                preopen: None,
                rights: dir_rights,
            },
            Node::File(_) if oflags & oflags::DIRECTORY != 0 => return Err(Errno::Notdir),
            Node::File(data) => Entry::File {
                path,
                data,
                pos: 0,
                rights: want & rights::FILE & dir_rights,
            },
        };
        let new = self.fds.insert(entry)?;
        g.write_u32(out, new)
    }

    fn path_filestat(
        &mut self,
        g: &mut Guest<'_>,
        fd: u32,
        ptr: u32,
        len: u32,
        out: u32,
    ) -> Result<(), Errno> {
        let (tree, base, _) = self.dir(fd)?;
        let (path, node) = tree.resolve(base, g.bytes(ptr, len)?)?;
        let stat = match node {
            Node::Dir => filestat(filetype::DIRECTORY, tree::inode(&path), 0),
            Node::File(d) => filestat(filetype::REGULAR_FILE, tree::inode(&path), d.len() as u64),
        };
        g.write(out, &stat)
    }
}

fn filestat(ty: u8, ino: u64, size: u64) -> [u8; abi::FILESTAT_BYTES as usize] {
    let mut s = [0u8; abi::FILESTAT_BYTES as usize];
    s[8..16].copy_from_slice(&ino.to_le_bytes());
    s[16] = ty;
    s[24..32].copy_from_slice(&1u64.to_le_bytes());
    s[32..40].copy_from_slice(&size.to_le_bytes());
    s
}

fn sizes(g: &mut Guest<'_>, list: &[Vec<u8>], count_out: u32, bytes_out: u32) -> Result<(), Errno> {
    let bytes = list_bytes(list)?;
    g.bytes(count_out, 4)?;
    g.bytes(bytes_out, 4)?;
    g.write_u32(count_out, list.len() as u32)?;
    g.write_u32(bytes_out, bytes)
}

fn list(g: &mut Guest<'_>, list: &[Vec<u8>], ptrs: u32, buf: u32) -> Result<(), Errno> {
    let bytes = list_bytes(list)?;
    let count = u32::try_from(list.len()).map_err(|_| Errno::Overflow)?;
    g.bytes(ptrs, count.checked_mul(4).ok_or(Errno::Fault)?)?;
    g.bytes(buf, bytes)?;
    // Offsets are computed in u64 and checked: with a memory of exactly 4 GiB the end of the
    // last item is 2^32, one past what a u32 holds.
    let mut at = u64::from(buf);
    for (i, item) in list.iter().enumerate() {
        let slot = u64::from(ptrs) + 4 * i as u64;
        let ptr = |v: u64| u32::try_from(v).map_err(|_| Errno::Fault);
        g.write_u32(ptr(slot)?, ptr(at)?)?;
        g.write(ptr(at)?, item)?;
        let nul = at + item.len() as u64;
        g.write(ptr(nul)?, &[0])?;
        at = nul + 1;
    }
    Ok(())
}

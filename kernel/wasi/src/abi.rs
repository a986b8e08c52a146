//! The `wasi_snapshot_preview1` functions: names, core-wasm signatures, and the constants and
//! struct layouts of the preview1 ABI this implementation uses.

/// The import module name.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// A core-wasm parameter type of a WASI function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// i32.
    I32,
    /// i64.
    I64,
}

macro_rules! funcs {
    ($($variant:ident $name:literal ($($p:ident),*) $res:literal;)*) => {
        /// A WASI preview1 function.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Func { $($variant),* }

        impl Func {
            /// Every function, in ABI order.
            pub const ALL: &'static [Func] = &[$(Func::$variant),*];

            /// The import field name.
            pub fn name(self) -> &'static str {
                match self { $(Func::$variant => $name),* }
            }

            /// Parameter types.
            pub fn params(self) -> &'static [Ty] {
                match self { $(Func::$variant => &[$(Ty::$p),*]),* }
            }

            /// Whether it returns an `errno` (every function but `proc_exit`).
            pub fn returns_errno(self) -> bool {
                match self { $(Func::$variant => $res),* }
            }
        }
    };
}

funcs! {
    ArgsGet "args_get" (I32, I32) true;
    ArgsSizesGet "args_sizes_get" (I32, I32) true;
    EnvironGet "environ_get" (I32, I32) true;
    EnvironSizesGet "environ_sizes_get" (I32, I32) true;
    ClockResGet "clock_res_get" (I32, I32) true;
    ClockTimeGet "clock_time_get" (I32, I64, I32) true;
    FdAdvise "fd_advise" (I32, I64, I64, I32) true;
    FdAllocate "fd_allocate" (I32, I64, I64) true;
    FdClose "fd_close" (I32) true;
    FdDatasync "fd_datasync" (I32) true;
    FdFdstatGet "fd_fdstat_get" (I32, I32) true;
    FdFdstatSetFlags "fd_fdstat_set_flags" (I32, I32) true;
    FdFdstatSetRights "fd_fdstat_set_rights" (I32, I64, I64) true;
    FdFilestatGet "fd_filestat_get" (I32, I32) true;
    FdFilestatSetSize "fd_filestat_set_size" (I32, I64) true;
    FdFilestatSetTimes "fd_filestat_set_times" (I32, I64, I64, I32) true;
    FdPread "fd_pread" (I32, I32, I32, I64, I32) true;
    FdPrestatGet "fd_prestat_get" (I32, I32) true;
    FdPrestatDirName "fd_prestat_dir_name" (I32, I32, I32) true;
    FdPwrite "fd_pwrite" (I32, I32, I32, I64, I32) true;
    FdRead "fd_read" (I32, I32, I32, I32) true;
    FdReaddir "fd_readdir" (I32, I32, I32, I64, I32) true;
    FdRenumber "fd_renumber" (I32, I32) true;
    FdSeek "fd_seek" (I32, I64, I32, I32) true;
    FdSync "fd_sync" (I32) true;
    FdTell "fd_tell" (I32, I32) true;
    FdWrite "fd_write" (I32, I32, I32, I32) true;
    PathCreateDirectory "path_create_directory" (I32, I32, I32) true;
    PathFilestatGet "path_filestat_get" (I32, I32, I32, I32, I32) true;
    PathFilestatSetTimes "path_filestat_set_times" (I32, I32, I32, I32, I64, I64, I32) true;
    PathLink "path_link" (I32, I32, I32, I32, I32, I32, I32) true;
    PathOpen "path_open" (I32, I32, I32, I32, I32, I64, I64, I32, I32) true;
    PathReadlink "path_readlink" (I32, I32, I32, I32, I32, I32) true;
    PathRemoveDirectory "path_remove_directory" (I32, I32, I32) true;
    PathRename "path_rename" (I32, I32, I32, I32, I32, I32) true;
    PathSymlink "path_symlink" (I32, I32, I32, I32, I32) true;
    PathUnlinkFile "path_unlink_file" (I32, I32, I32) true;
    PollOneoff "poll_oneoff" (I32, I32, I32, I32) true;
    ProcExit "proc_exit" (I32) false;
    ProcRaise "proc_raise" (I32) true;
    SchedYield "sched_yield" () true;
    RandomGet "random_get" (I32, I32) true;
    SockAccept "sock_accept" (I32, I32, I32) true;
    SockRecv "sock_recv" (I32, I32, I32, I32, I32, I32) true;
    SockSend "sock_send" (I32, I32, I32, I32, I32) true;
    SockShutdown "sock_shutdown" (I32, I32) true;
}

impl Func {
    /// The function named `name`.
    pub fn by_name(name: &str) -> Option<Func> {
        Func::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// `filetype` values.
pub mod filetype {
    /// A character device (the console streams).
    pub const CHARACTER_DEVICE: u8 = 2;
    /// A directory.
    pub const DIRECTORY: u8 = 3;
    /// A regular file.
    pub const REGULAR_FILE: u8 = 4;
}

/// `rights` bits.
pub mod rights {
    #![allow(missing_docs)]
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;

    /// What a read-only regular file allows.
    pub const FILE: u64 =
        FD_READ | FD_SEEK | FD_TELL | FD_ADVISE | FD_FILESTAT_GET | POLL_FD_READWRITE;
    /// What a read-only directory allows (and passes on to what is opened under it).
    pub const DIR: u64 = PATH_OPEN | FD_READDIR | PATH_FILESTAT_GET | FD_FILESTAT_GET;
    /// What a directory says files opened under it may get: writes included, so that a
    /// program asking to write is refused with `EROFS` rather than silently given less.
    pub const INHERITING: u64 = DIR | FILE | FD_WRITE;
    /// Standard input.
    pub const STDIN: u64 = FD_READ | FD_FILESTAT_GET | POLL_FD_READWRITE;
    /// Standard output and error.
    pub const STDOUT: u64 = FD_WRITE | FD_FILESTAT_GET | POLL_FD_READWRITE;
}

/// `oflags` bits.
pub mod oflags {
    #![allow(missing_docs)]
    pub const CREAT: u32 = 1;
    pub const DIRECTORY: u32 = 2;
    pub const EXCL: u32 = 4;
    pub const TRUNC: u32 = 8;
}

/// `clockid` values.
pub mod clock {
    #![allow(missing_docs)]
    pub const REALTIME: u32 = 0;
    pub const MONOTONIC: u32 = 1;
    pub const PROCESS_CPUTIME: u32 = 2;
    pub const THREAD_CPUTIME: u32 = 3;
}

/// Size of `filestat`.
pub const FILESTAT_BYTES: u32 = 64;
/// Size of `fdstat`.
pub const FDSTAT_BYTES: u32 = 24;
/// Size of a `dirent` header (the name follows).
pub const DIRENT_BYTES: usize = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for f in Func::ALL {
            assert_eq!(Func::by_name(f.name()), Some(*f));
        }
        assert_eq!(Func::ALL.len(), 46);
        assert_eq!(
            Func::by_name("fd_write").map(Func::params).map(<[Ty]>::len),
            Some(4)
        );
        assert!(!Func::ProcExit.returns_errno());
    }
}

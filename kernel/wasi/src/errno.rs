//! WASI preview1 error numbers (the subset this implementation returns).

/// A WASI `errno` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
#[allow(missing_docs)]
pub enum Errno {
    Success = 0,
    Acces = 2,
    Badf = 8,
    Exist = 20,
    Fault = 21,
    Ilseq = 25,
    Inval = 28,
    Io = 29,
    Isdir = 31,
    Mfile = 33,
    Nametoolong = 37,
    Noent = 44,
    Nosys = 52,
    Notdir = 54,
    Notempty = 55,
    Overflow = 61,
    Perm = 63,
    Rofs = 69,
    Spipe = 70,
    Notcapable = 76,
}

impl Errno {
    /// The number a WASI function returns.
    pub fn code(self) -> u32 {
        self as u32
    }
}

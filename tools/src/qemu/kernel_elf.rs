//! The kernel ELF the disk images were built from, read to check what the addresses in a fault
//! report point at: a report prints `rip: ADDR (kernel+OFFSET)`, and OFFSET is a virtual
//! address of this position-independent ELF (its first loadable segment starts at 0).

use std::fmt;
use std::path::{Path, PathBuf};

use super::options::repo_root;

/// The release kernel `scripts/build.sh` puts into the disk images.
pub fn kernel_elf_path() -> PathBuf {
    repo_root().join("target/x86_64-unknown-none/release/atoll-kernel")
}

/// Why the kernel ELF could not be read.
#[derive(Debug)]
pub enum ElfError {
    /// Reading the file failed.
    Io(PathBuf, std::io::Error),
    /// Not a little-endian 64-bit ELF file, or a header points outside the file.
    Malformed(&'static str),
    /// No loaded segment holds this virtual address.
    Unmapped(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(path, e) => write!(f, "{}: {e} (build with scripts/build.sh)", path.display()),
            Self::Malformed(what) => write!(f, "the kernel ELF is malformed: {what}"),
            Self::Unmapped(addr) => write!(f, "no loaded segment holds kernel+{addr:#x}"),
        }
    }
}

impl std::error::Error for ElfError {}

/// A loadable segment: `file_len` bytes at file offset `file_offset` appear at `vaddr`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    vaddr: u64,
    file_offset: u64,
    file_len: u64,
}

/// The loadable segments of an ELF file and its bytes.
#[derive(Debug)]
pub struct KernelElf {
    bytes: Vec<u8>,
    segments: Vec<Segment>,
}

const PT_LOAD: u32 = 1;

/// `N` bytes at `base + off` (overflow and short files are malformed, never a panic).
fn field<const N: usize>(b: &[u8], base: usize, off: usize) -> Result<[u8; N], ElfError> {
    base.checked_add(off)
        .and_then(|at| b.get(at..)?.get(..N))
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError::Malformed("truncated header"))
}

fn read_u16(b: &[u8], base: usize, off: usize) -> Result<u16, ElfError> {
    field(b, base, off).map(u16::from_le_bytes)
}

fn read_u32(b: &[u8], base: usize, off: usize) -> Result<u32, ElfError> {
    field(b, base, off).map(u32::from_le_bytes)
}

fn read_u64(b: &[u8], base: usize, off: usize) -> Result<u64, ElfError> {
    field(b, base, off).map(u64::from_le_bytes)
}

impl KernelElf {
    /// Reads [`kernel_elf_path`].
    pub fn load() -> Result<Self, ElfError> {
        Self::read(&kernel_elf_path())
    }

    /// Reads the ELF file at `path`.
    pub fn read(path: &Path) -> Result<Self, ElfError> {
        let bytes = std::fs::read(path).map_err(|e| ElfError::Io(path.to_owned(), e))?;
        Self::parse(bytes)
    }

    /// Parses an ELF64 little-endian file's program headers.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, ElfError> {
        if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
            return Err(ElfError::Malformed("not a little-endian ELF64 file"));
        }
        let phoff = usize::try_from(read_u64(&bytes, 0, 0x20)?)
            .map_err(|_| ElfError::Malformed("program header offset"))?;
        let phentsize = usize::from(read_u16(&bytes, 0, 0x36)?);
        let phnum = usize::from(read_u16(&bytes, 0, 0x38)?);
        let mut segments = Vec::new();
        for i in 0..phnum {
            let at = phoff
                .checked_add(i * phentsize)
                .ok_or(ElfError::Malformed("program header offset"))?;
            if read_u32(&bytes, at, 0)? != PT_LOAD {
                continue;
            }
            let seg = Segment {
                file_offset: read_u64(&bytes, at, 8)?,
                vaddr: read_u64(&bytes, at, 16)?,
                file_len: read_u64(&bytes, at, 32)?,
            };
            if seg.file_offset.saturating_add(seg.file_len) > bytes.len() as u64 {
                return Err(ElfError::Malformed(
                    "a segment extends past the end of the file",
                ));
            }
            segments.push(seg);
        }
        Ok(Self { bytes, segments })
    }

    /// The file's bytes from virtual address `vaddr` (a report's `kernel+OFFSET`) to the end
    /// of the segment that holds it.
    pub fn bytes_at(&self, vaddr: u64) -> Result<&[u8], ElfError> {
        let seg = self
            .segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.file_len)
            .ok_or(ElfError::Unmapped(vaddr))?;
        let start = (seg.file_offset + (vaddr - seg.vaddr)) as usize;
        let end = (seg.file_offset + seg.file_len) as usize;
        Ok(&self.bytes[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header with one PT_LOAD program header mapping file bytes 0x100..0x110 at 0x5000.
    fn tiny_elf() -> Vec<u8> {
        let mut b = vec![0u8; 0x110];
        b[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[0x40..0x44].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[0x48..0x50].copy_from_slice(&0x100u64.to_le_bytes());
        b[0x50..0x58].copy_from_slice(&0x5000u64.to_le_bytes());
        b[0x60..0x68].copy_from_slice(&0x10u64.to_le_bytes());
        for (i, byte) in b[0x100..].iter_mut().enumerate() {
            *byte = i as u8;
        }
        b
    }

    #[test]
    fn maps_virtual_addresses_to_file_bytes() {
        let elf = KernelElf::parse(tiny_elf()).expect("parses");
        assert_eq!(elf.bytes_at(0x5000).expect("mapped")[..2], [0, 1]);
        assert_eq!(elf.bytes_at(0x500f).expect("mapped"), [15]);
        assert!(matches!(
            elf.bytes_at(0x5010),
            Err(ElfError::Unmapped(0x5010))
        ));
        assert!(matches!(elf.bytes_at(0x4fff), Err(ElfError::Unmapped(_))));
    }

    #[test]
    fn rejects_what_is_not_elf64() {
        assert!(matches!(
            KernelElf::parse(vec![0; 64]),
            Err(ElfError::Malformed(_))
        ));
        let mut elf = tiny_elf();
        elf.truncate(0x108);
        assert!(matches!(KernelElf::parse(elf), Err(ElfError::Malformed(_))));
    }
}

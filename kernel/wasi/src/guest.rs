//! A checked view of a program's linear memory: every pointer and length a program passes is
//! checked against the memory's size here, and a bad one is [`Errno::Fault`], never a panic.

use alloc::vec::Vec;

use crate::errno::Errno;

/// Linear memory as a byte slice, borrowed for one WASI call.
#[derive(Debug)]
pub struct Guest<'m> {
    mem: &'m mut [u8],
}

impl<'m> Guest<'m> {
    /// Wraps the memory's bytes.
    pub fn new(mem: &'m mut [u8]) -> Self {
        Self { mem }
    }

    fn range(&self, ptr: u32, len: u32) -> Result<core::ops::Range<usize>, Errno> {
        let end = u64::from(ptr) + u64::from(len);
        if end > self.mem.len() as u64 {
            return Err(Errno::Fault);
        }
        Ok(ptr as usize..end as usize)
    }

    /// `len` bytes at `ptr`.
    pub fn bytes(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let r = self.range(ptr, len)?;
        Ok(&self.mem[r])
    }

    /// `len` writable bytes at `ptr`.
    pub fn bytes_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.mem[r])
    }

    /// Copies `data` to `ptr`.
    pub fn write(&mut self, ptr: u32, data: &[u8]) -> Result<(), Errno> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::Fault)?;
        self.bytes_mut(ptr, len)?.copy_from_slice(data);
        Ok(())
    }

    /// A little-endian u32 at `ptr`.
    pub fn read_u32(&self, ptr: u32) -> Result<u32, Errno> {
        let b = self.bytes(ptr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes a little-endian u32.
    pub fn write_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// Writes a little-endian u64.
    pub fn write_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// An array of `count` iovecs (`buf: u32, len: u32`) at `ptr`, each buffer checked.
    pub fn iovecs(&self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        let table = self.bytes(ptr, count.checked_mul(8).ok_or(Errno::Fault)?)?;
        let mut out = Vec::with_capacity(count as usize);
        for entry in table.chunks_exact(8) {
            let buf = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let len = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
            self.range(buf, len)?;
            out.push((buf, len));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let mut mem = [0u8; 16];
        let mut g = Guest::new(&mut mem);
        assert_eq!(g.write_u32(12, 7), Ok(()));
        assert_eq!(g.read_u32(12), Ok(7));
        assert_eq!(g.write_u32(13, 7), Err(Errno::Fault));
        assert_eq!(g.bytes(u32::MAX, 2), Err(Errno::Fault));
        assert_eq!(g.bytes(16, 0).map(<[u8]>::len), Ok(0));
        assert_eq!(g.write_u64(9, 1), Err(Errno::Fault));
    }

    #[test]
    fn iovecs_check_each_buffer() {
        let mut mem = [0u8; 32];
        mem[0..8].copy_from_slice(&[16, 0, 0, 0, 4, 0, 0, 0]);
        mem[8..16].copy_from_slice(&[30, 0, 0, 0, 4, 0, 0, 0]);
        let g = Guest::new(&mut mem);
        assert_eq!(g.iovecs(0, 1), Ok(alloc::vec![(16, 4)]));
        assert_eq!(g.iovecs(0, 2), Err(Errno::Fault));
        assert_eq!(g.iovecs(0, u32::MAX), Err(Errno::Fault));
    }
}

//! The file-descriptor table: the three console streams, preopened directories, and files and
//! directories opened under them. Descriptors are reused lowest-first, like POSIX.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::errno::Errno;
use crate::tree::Tree;

/// Most descriptors a program may hold open.
pub const MAX_FDS: usize = 1024;

/// What a descriptor refers to.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Standard input.
    Stdin,
    /// Standard output (`fd` 1) or error (`fd` 2).
    Out(u32),
    /// A directory of a read-only tree.
    Dir {
        /// The tree.
        tree: Arc<Tree>,
        /// Path inside it (`""` = its root).
        path: String,
        /// The name it was preopened under (only preopens have one).
        preopen: Option<String>,
        /// Rights.
        rights: u64,
    },
    /// A regular file of a read-only tree.
    File {
        /// Path inside its tree (for `filestat`'s inode).
        path: String,
        /// Its bytes.
        data: Arc<[u8]>,
        /// Read position.
        pos: u64,
        /// Rights.
        rights: u64,
    },
}

/// The table.
#[derive(Debug, Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<Entry>>,
}

impl FdTable {
    /// A table with stdin, stdout and stderr.
    pub fn with_stdio() -> Self {
        Self {
            slots: alloc::vec![Some(Entry::Stdin), Some(Entry::Out(1)), Some(Entry::Out(2))],
        }
    }

    /// The entry of `fd`.
    pub fn get(&self, fd: u32) -> Result<&Entry, Errno> {
        self.slots
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(Errno::Badf)
    }

    /// The entry of `fd`, mutably.
    pub fn get_mut(&mut self, fd: u32) -> Result<&mut Entry, Errno> {
        self.slots
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(Errno::Badf)
    }

    /// Stores `entry` under the lowest free descriptor.
    pub fn insert(&mut self, entry: Entry) -> Result<u32, Errno> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(entry);
            return Ok(i as u32);
        }
        if self.slots.len() >= MAX_FDS {
            return Err(Errno::Mfile);
        }
        self.slots.push(Some(entry));
        Ok(self.slots.len() as u32 - 1)
    }

    /// Closes `fd`.
    pub fn close(&mut self, fd: u32) -> Result<(), Errno> {
        let slot = self.slots.get_mut(fd as usize).ok_or(Errno::Badf)?;
        slot.take().map(|_| ()).ok_or(Errno::Badf)
    }

    /// Moves `from` onto `to` (closing what `to` held).
    pub fn renumber(&mut self, from: u32, to: u32) -> Result<(), Errno> {
        self.get(to)?;
        let entry = self
            .slots
            .get_mut(from as usize)
            .and_then(Option::take)
            .ok_or(Errno::Badf)?;
        self.slots[to as usize] = Some(entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_descriptor_is_reused() {
        let mut t = FdTable::with_stdio();
        assert_eq!(t.insert(Entry::Stdin), Ok(3));
        assert_eq!(t.insert(Entry::Stdin), Ok(4));
        assert_eq!(t.close(3), Ok(()));
        assert_eq!(t.close(3), Err(Errno::Badf));
        assert_eq!(t.insert(Entry::Out(1)), Ok(3));
        assert_eq!(t.get(99).err(), Some(Errno::Badf));
        assert_eq!(t.renumber(4, 0), Ok(()));
        assert!(matches!(t.get(0), Ok(Entry::Stdin)));
        assert_eq!(t.get(4).err(), Some(Errno::Badf));
        assert_eq!(t.renumber(4, 0), Err(Errno::Badf));
        assert_eq!(t.renumber(0, 77), Err(Errno::Badf));
    }

    #[test]
    fn table_is_bounded() {
        let mut t = FdTable::with_stdio();
        for _ in 3..MAX_FDS {
            t.insert(Entry::Stdin).unwrap();
        }
        assert_eq!(t.insert(Entry::Stdin), Err(Errno::Mfile));
    }
}

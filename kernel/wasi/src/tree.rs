//! A read-only file tree: the files a chunk image ships with a program, or a snapshot of a host
//! directory (`chunkc exec --dir`). Paths are `/`-separated, relative, without `.`/`..` or
//! empty components; directories are implied by the files under them (or added explicitly).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::errno::Errno;

/// Longest path a program may pass.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path could not be added to a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// Empty, absolute, or with an empty, `.` or `..` component.
    BadPath(String),
    /// The same path twice, or a path both a file and a directory.
    Conflict(String),
}

impl core::fmt::Display for TreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadPath(p) => write!(f, "`{p}` is not a plain relative path"),
            Self::Conflict(p) => write!(f, "`{p}` is given twice or is both file and directory"),
        }
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file and its bytes.
    File(Arc<[u8]>),
    /// A directory.
    Dir,
}

/// A read-only tree of files and directories. The root is the empty path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    files: BTreeMap<String, Arc<[u8]>>,
    dirs: BTreeSet<String>,
}

/// Checks that `path` is a plain relative path.
pub fn check_path(path: &str) -> Result<(), TreeError> {
    let bad = path.is_empty()
        || path.len() > MAX_PATH_BYTES
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(TreeError::BadPath(path.into()));
    }
    Ok(())
}

fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

impl Tree {
    /// An empty tree (just the root directory).
    pub fn new() -> Self {
        Self::default()
    }

    fn add_parents(&mut self, path: &str) -> Result<(), TreeError> {
        let mut dir = parent(path);
        while !dir.is_empty() {
            if self.files.contains_key(dir) {
                return Err(TreeError::Conflict(dir.into()));
            }
            self.dirs.insert(dir.to_string());
            dir = parent(dir);
        }
        Ok(())
    }

    /// Adds a file (and its parent directories).
    pub fn add_file(&mut self, path: &str, data: Arc<[u8]>) -> Result<(), TreeError> {
        check_path(path)?;
        if self.files.contains_key(path) || self.dirs.contains(path) {
            return Err(TreeError::Conflict(path.into()));
        }
        self.add_parents(path)?;
        self.files.insert(path.into(), data);
        Ok(())
    }

    /// Adds a (possibly empty) directory.
    pub fn add_dir(&mut self, path: &str) -> Result<(), TreeError> {
        check_path(path)?;
        if self.files.contains_key(path) {
            return Err(TreeError::Conflict(path.into()));
        }
        self.add_parents(path)?;
        self.dirs.insert(path.into());
        Ok(())
    }

    /// Every file, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Arc<[u8]>)> {
        self.files.iter().map(|(p, d)| (p.as_str(), d))
    }

    /// Every directory but the root, in path order.
    pub fn dirs(&self) -> impl Iterator<Item = &str> {
        self.dirs.iter().map(String::as_str)
    }

    /// The node at a normalized path (`""` is the root).
    pub fn node(&self, path: &str) -> Option<Node> {
        if path.is_empty() || self.dirs.contains(path) {
            return Some(Node::Dir);
        }
        self.files.get(path).map(|d| Node::File(d.clone()))
    }

    /// Resolves `rel` (bytes a program passed) against directory `base`, never leaving `base`:
    /// absolute paths and `..` above `base` are [`Errno::Notcapable`]; a missing component is
    /// [`Errno::Noent`], a file used as a directory [`Errno::Notdir`].
    pub fn resolve(&self, base: &str, rel: &[u8]) -> Result<(String, Node), Errno> {
        if rel.len() > MAX_PATH_BYTES {
            return Err(Errno::Nametoolong);
        }
        let rel = core::str::from_utf8(rel).map_err(|_| Errno::Ilseq)?;
        if rel.starts_with('/') {
            return Err(Errno::Notcapable);
        }
        let floor = if base.is_empty() {
            0
        } else {
            base.split('/').count()
        };
        let mut parts: Vec<&str> = if base.is_empty() {
            Vec::new()
        } else {
            base.split('/').collect()
        };
        let comps: Vec<&str> = rel.split('/').collect();
        for (i, comp) in comps.iter().enumerate() {
            match *comp {
                "" | "." => continue,
                ".." => {
                    if parts.len() <= floor {
                        return Err(Errno::Notcapable);
                    }
                    parts.pop();
                }
                name => parts.push(name),
            }
            let so_far = parts.join("/");
            match self.node(&so_far) {
                None => return Err(Errno::Noent),
                Some(Node::File(_)) if i + 1 < comps.len() => return Err(Errno::Notdir),
                Some(_) => {}
            }
        }
        let path = parts.join("/");
        let node = self.node(&path).ok_or(Errno::Noent)?;
        if rel.ends_with('/') && matches!(node, Node::File(_)) {
            return Err(Errno::Notdir);
        }
        Ok((path, node))
    }

    /// The entries directly in directory `dir`, by name: `(name, is_dir)`.
    pub fn children(&self, dir: &str) -> Vec<(String, bool)> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            alloc::format!("{dir}/")
        };
        let direct = |p: &String| {
            p.strip_prefix(prefix.as_str())
                .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                .map(ToString::to_string)
        };
        let mut out: Vec<(String, bool)> = self
            .dirs
            .iter()
            .filter_map(|p| direct(p).map(|n| (n, true)))
            .chain(
                self.files
                    .keys()
                    .filter_map(|p| direct(p).map(|n| (n, false))),
            )
            .collect();
        out.sort();
        out
    }

    /// Total bytes of file contents.
    pub fn size_bytes(&self) -> usize {
        self.files.values().map(|d| d.len()).sum()
    }
}

/// A stable inode number for `path` (FNV-1a 64), the same in every engine.
pub fn inode(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let mut t = Tree::new();
        t.add_file("a/b/c.txt", Arc::from(&b"hello"[..])).unwrap();
        t.add_file("top.txt", Arc::from(&b"x"[..])).unwrap();
        t.add_dir("empty").unwrap();
        t
    }

    #[test]
    fn rejects_unclean_paths() {
        let mut t = Tree::new();
        for p in ["", "/a", "a//b", "a/./b", "../a", "a/"] {
            assert!(t.add_file(p, Arc::from(&b""[..])).is_err(), "{p}");
        }
        t.add_file("a/b", Arc::from(&b""[..])).unwrap();
        assert_eq!(
            t.add_file("a/b/c", Arc::from(&b""[..])),
            Err(TreeError::Conflict("a/b".into()))
        );
        assert!(t.add_file("a/b", Arc::from(&b""[..])).is_err());
    }

    #[test]
    fn resolves_inside_the_base_only() {
        let t = tree();
        assert_eq!(t.resolve("", b"a/b/c.txt").unwrap().0, "a/b/c.txt");
        assert_eq!(t.resolve("a", b"b/../b/./c.txt").unwrap().0, "a/b/c.txt");
        assert_eq!(t.resolve("", b".").unwrap(), (String::new(), Node::Dir));
        assert_eq!(t.resolve("a", b"..").unwrap_err(), Errno::Notcapable);
        assert_eq!(
            t.resolve("", b"/etc/passwd").unwrap_err(),
            Errno::Notcapable
        );
        assert_eq!(t.resolve("", b"a/nope").unwrap_err(), Errno::Noent);
        assert_eq!(t.resolve("", b"top.txt/x").unwrap_err(), Errno::Notdir);
        assert_eq!(t.resolve("", b"top.txt/").unwrap_err(), Errno::Notdir);
        assert_eq!(t.resolve("", &[0xff]).unwrap_err(), Errno::Ilseq);
    }

    #[test]
    fn lists_direct_children_sorted() {
        let t = tree();
        assert_eq!(
            t.children(""),
            alloc::vec![
                ("a".into(), true),
                ("empty".into(), true),
                ("top.txt".into(), false)
            ]
        );
        assert_eq!(t.children("a/b"), alloc::vec![("c.txt".into(), false)]);
        assert!(t.children("empty").is_empty());
    }
}

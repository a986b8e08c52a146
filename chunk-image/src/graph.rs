//! Image-wide checks shared by the writer and the reader: unique names, every chunk import
//! resolved by a chunk that exports it, and no dependency cycles between chunks.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::FormatError;
use crate::model::{Manifest, Provider};

/// The import module name of the kernel's functions.
pub const KERNEL_MODULE: &str = "atoll";
/// The import module name of the WASI preview1 functions (also provided by the kernel).
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Checks names, providers and cycles over `(name, manifest)` pairs.
pub fn check_image<'m>(
    chunks: impl Iterator<Item = (&'m str, &'m Manifest)> + Clone,
) -> Result<(), FormatError> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut manifests: Vec<&Manifest> = Vec::new();
    for (i, (name, manifest)) in chunks.clone().enumerate() {
        if name.is_empty() {
            return Err(FormatError::BadString("empty chunk name"));
        }
        if by_name.insert(name, i).is_some() {
            return Err(FormatError::DuplicateName(String::from(name)));
        }
        manifests.push(manifest);
    }

    // Edges: chunk index -> provider chunk indices.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); manifests.len()];
    for (i, (name, manifest)) in chunks.enumerate() {
        for import in &manifest.imports {
            match &import.provider {
                Provider::Kernel
                    if import.module == KERNEL_MODULE || import.module == WASI_MODULE => {}
                Provider::Chunk(provider) if *provider == import.module => {
                    let missing = || FormatError::MissingProvider {
                        chunk: String::from(name),
                        module: import.module.clone(),
                        name: import.name.clone(),
                    };
                    let &p = by_name.get(provider.as_str()).ok_or_else(missing)?;
                    let exported = manifests
                        .get(p)
                        .is_some_and(|m| m.exports.iter().any(|e| e.name == import.name));
                    if !exported {
                        return Err(missing());
                    }
                    if let Some(list) = edges.get_mut(i)
                        && !list.contains(&p)
                    {
                        list.push(p);
                    }
                }
                _ => {
                    return Err(FormatError::ProviderMismatch {
                        chunk: String::from(name),
                        module: import.module.clone(),
                    });
                }
            }
        }
    }

    if let Some(at) = find_cycle(&edges) {
        let name = by_name
            .iter()
            .find(|&(_, &i)| i == at)
            .map_or_else(String::new, |(n, _)| String::from(*n));
        return Err(FormatError::DependencyCycle(name));
    }
    Ok(())
}

/// Iterative three-colour DFS; returns a node on a cycle, if any. Runs in O(nodes + edges).
fn find_cycle(edges: &[Vec<usize>]) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; edges.len()];
    for root in 0..edges.len() {
        if colour[root] != Colour::White {
            continue;
        }
        // Stack of (node, next edge to explore).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = Colour::Grey;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            match edges.get(node).and_then(|list| list.get(next)) {
                Some(&succ) => {
                    top.1 += 1;
                    match colour.get(succ) {
                        Some(Colour::Grey) => return Some(succ),
                        Some(Colour::White) => {
                            colour[succ] = Colour::Grey;
                            stack.push((succ, 0));
                        }
                        _ => {}
                    }
                }
                None => {
                    colour[node] = Colour::Black;
                    stack.pop();
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find_cycle;
    use alloc::vec;

    #[test]
    fn cycles_are_found() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        assert!(find_cycle(&[vec![1], vec![2], vec![0]]).is_some());
        assert!(find_cycle(&[vec![0]]).is_some());
        assert_eq!(find_cycle(&[vec![1, 2], vec![2], vec![]]), None);
    }
}

//! Image-wide checks shared by the writer and the reader: unique names, every chunk import
//! resolved by a chunk that exports it (shared memories, tables and globals of a matching type), and no dependency cycles between chunks.

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
    for (i, (name, manifest)) in chunks.clone().enumerate() {
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

    for (i, (name, manifest)) in chunks.enumerate() {
        for import in &manifest.object_imports {
            let missing = || FormatError::MissingProvider {
                chunk: String::from(name),
                module: import.module.clone(),
                name: import.name.clone(),
            };
            let Provider::Chunk(provider) = &import.provider else {
                return Err(missing());
            };
            if *provider != import.module {
                return Err(FormatError::ProviderMismatch {
                    chunk: String::from(name),
                    module: import.module.clone(),
                });
            }
            let &p = by_name.get(provider.as_str()).ok_or_else(missing)?;
            let export = manifests
                .get(p)
                .and_then(|m| m.object_exports.iter().find(|e| e.name == import.name))
                .ok_or_else(missing)?;
            if let Some(reason) = export.ty.mismatch(&import.ty) {
                return Err(FormatError::ObjectMismatch {
                    chunk: String::from(name),
                    module: import.module.clone(),
                    name: import.name.clone(),
                    reason,
                });
            }
            if let Some(list) = edges.get_mut(i)
                && !list.contains(&p)
            {
                list.push(p);
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

/// The linked groups of an image: chunks connected (through imports of any kind, in either
/// direction, transitively) to a chunk that shares a memory, table or global. For each chunk
/// in order, the index of the first chunk of its group, or `None` when it is in no group.
///
/// Chunks of one group share state, so an embedder keeps one instance of each and runs their
/// tasks one at a time (WebAssembly 2.0 has no threads); every other chunk gets fresh instances
/// per task. A function import alone joins the group too: a funcref passed across it could
/// otherwise outlive the instance it points into.
pub fn linked_groups<'m>(
    chunks: impl Iterator<Item = (&'m str, &'m Manifest)> + Clone,
) -> Vec<Option<usize>> {
    let names: Vec<&str> = chunks.clone().map(|(n, _)| n).collect();
    let index = |name: &str| names.iter().position(|n| *n == name);
    let mut parent: Vec<usize> = (0..names.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut sharing = vec![false; names.len()];
    for (i, (_, manifest)) in chunks.enumerate() {
        for dep in manifest.chunk_dependencies() {
            if let Some(j) = index(dep) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                // The smaller index becomes the root, so a group is named by its first chunk.
                parent[a.max(b)] = a.min(b);
            }
        }
        for dep in manifest.object_providers() {
            if let Some(j) = index(dep) {
                sharing[i] = true;
                sharing[j] = true;
            }
        }
    }
    let mut shared_roots = vec![false; names.len()];
    for (i, _) in sharing.iter().enumerate().filter(|(_, s)| **s) {
        let r = root(&mut parent, i);
        shared_roots[r] = true;
    }
    (0..names.len())
        .map(|i| {
            let r = root(&mut parent, i);
            shared_roots[r].then_some(r)
        })
        .collect()
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
    use super::{find_cycle, linked_groups};
    use crate::model::{Import, Manifest, ObjectImport, ObjectType, Provider};
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    fn importing(funcs: &[&str], objects: &[&str]) -> Manifest {
        let chunk = |p: &&str| Provider::Chunk(String::from(*p));
        Manifest {
            imports: funcs
                .iter()
                .map(|p| Import {
                    module: (*p).into(),
                    name: "f".into(),
                    sig: Default::default(),
                    provider: chunk(p),
                })
                .collect(),
            object_imports: objects
                .iter()
                .map(|p| ObjectImport {
                    module: (*p).into(),
                    name: "m".into(),
                    ty: ObjectType::Memory { min: 0, max: None },
                    provider: chunk(p),
                })
                .collect(),
            ..Manifest::default()
        }
    }

    #[test]
    fn groups_are_components_that_share_objects() {
        let chunks: Vec<(&str, Manifest)> = vec![
            ("lib", importing(&[], &[])),
            ("store", importing(&[], &[])),
            ("writer", importing(&["lib"], &["store"])),
            ("reader", importing(&[], &["store"])),
            ("user", importing(&["reader"], &[])),
            ("alone", importing(&["lib2"], &[])),
            ("lib2", importing(&[], &[])),
        ];
        let groups = linked_groups(chunks.iter().map(|(n, m)| (*n, m)));
        // lib joins through writer's function import, user through reader's export.
        assert_eq!(
            groups,
            [Some(0), Some(0), Some(0), Some(0), Some(0), None, None]
        );
        let plain: Vec<(&str, Manifest)> =
            vec![("a", importing(&[], &[])), ("b", importing(&["a"], &[]))];
        assert_eq!(
            linked_groups(plain.iter().map(|(n, m)| (*n, m))),
            [None, None]
        );
    }

    #[test]
    fn cycles_are_found() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        assert!(find_cycle(&[vec![1], vec![2], vec![0]]).is_some());
        assert!(find_cycle(&[vec![0]]).is_some());
        assert_eq!(find_cycle(&[vec![1, 2], vec![2], vec![]]), None);
    }
}

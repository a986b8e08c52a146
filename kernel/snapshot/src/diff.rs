//! Page-granular comparison of two images of one linear memory.

use alloc::vec::Vec;

use crate::PAGE_BYTES;

/// The 4 KiB pages of `after` that differ from `before`, in increasing order. Where `after` is
/// longer (the memory grew), the missing part of `before` counts as zeros, as `memory.grow`
/// makes it; `after` shorter than `before` cannot happen (memories never shrink) and compares
/// only the common part.
pub fn dirty_pages(before: &[u8], after: &[u8]) -> Vec<u32> {
    let mut dirty = Vec::new();
    for (index, page) in after.chunks(PAGE_BYTES).enumerate() {
        let start = index * PAGE_BYTES;
        let old = before.get(start..).unwrap_or(&[]);
        let old = &old[..old.len().min(page.len())];
        let changed = page[..old.len()] != *old || page[old.len()..].iter().any(|&b| b != 0);
        if changed {
            dirty.push(index as u32);
        }
    }
    dirty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_images_have_no_dirty_page() {
        let a = vec![7u8; 3 * PAGE_BYTES];
        assert!(dirty_pages(&a, &a).is_empty());
    }

    #[test]
    fn one_byte_dirties_exactly_its_page() {
        let a = vec![0u8; 4 * PAGE_BYTES];
        for at in [0, PAGE_BYTES - 1, PAGE_BYTES, 3 * PAGE_BYTES + 17] {
            let mut b = a.clone();
            b[at] = 1;
            assert_eq!(
                dirty_pages(&a, &b),
                vec![(at / PAGE_BYTES) as u32],
                "byte {at}"
            );
        }
    }

    #[test]
    fn grown_part_is_compared_against_zeros() {
        let a = vec![1u8; PAGE_BYTES];
        let mut b = a.clone();
        b.resize(4 * PAGE_BYTES, 0);
        assert!(
            dirty_pages(&a, &b).is_empty(),
            "zeros from growth are not dirty"
        );
        b[2 * PAGE_BYTES + 5] = 9;
        assert_eq!(dirty_pages(&a, &b), vec![2]);
    }

    #[test]
    fn a_write_of_the_old_value_is_not_dirty() {
        let a = vec![5u8; 2 * PAGE_BYTES];
        let mut b = a.clone();
        b[10] = 5;
        assert!(dirty_pages(&a, &b).is_empty());
    }
}

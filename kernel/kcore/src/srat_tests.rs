//! Host tests of the SRAT/SLIT decoder on hand-built tables.

use super::*;
use alloc::vec;

/// A table with a valid header around `body` (the bytes after the 36-byte header).
fn with_header(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(sig);
    t.extend_from_slice(&((HEADER_BYTES + body.len()) as u32).to_le_bytes());
    t.push(3); // revision
    t.push(0); // checksum, fixed below
    t.extend_from_slice(b"ATOLLT");
    t.extend_from_slice(b"TESTTABL");
    t.extend_from_slice(&[0; 12]);
    t.extend_from_slice(body);
    fix_checksum(&mut t);
    t
}

fn fix_checksum(t: &mut [u8]) {
    t[9] = 0;
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[9] = 0u8.wrapping_sub(sum);
}

fn srat(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![1, 0, 0, 0];
    body.extend_from_slice(&[0; 8]);
    for e in entries {
        body.extend_from_slice(e);
    }
    with_header(b"SRAT", &body)
}

fn lapic(apic: u8, domain: u32, flags: u32) -> Vec<u8> {
    let d = domain.to_le_bytes();
    let mut e = vec![0, 16, d[0], apic];
    e.extend_from_slice(&flags.to_le_bytes());
    e.push(0); // SAPIC EID
    e.extend_from_slice(&d[1..4]);
    e.extend_from_slice(&[0; 4]); // clock domain
    e
}

fn memory(base: u64, len: u64, domain: u32, flags: u32) -> Vec<u8> {
    let mut e = vec![1, 40];
    e.extend_from_slice(&domain.to_le_bytes());
    e.extend_from_slice(&[0; 2]);
    e.extend_from_slice(&base.to_le_bytes());
    e.extend_from_slice(&len.to_le_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&[0; 8]);
    e
}

fn x2apic(id: u32, domain: u32, flags: u32) -> Vec<u8> {
    let mut e = vec![2, 24, 0, 0];
    e.extend_from_slice(&domain.to_le_bytes());
    e.extend_from_slice(&id.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&[0; 8]);
    e
}

const MIB: u64 = 1 << 20;

#[test]
fn decodes_every_entry_kind() {
    let t = srat(&[
        lapic(0, 0, 1),
        lapic(1, 0x0102_0304, 1),
        lapic(2, 1, 0),
        memory(0, 640 * 1024, 0, 1),
        memory(MIB, 511 * MIB, 0, 1),
        memory(4096 * MIB, 1024 * MIB, 1, 0b111),
        memory(0, 0, 0, 0),
        x2apic(0x1_0000, 7, 1),
        vec![5, 32].into_iter().chain([0; 30]).collect(), // a generic initiator: skipped
    ]);
    let s = parse_srat(&t).unwrap();
    assert_eq!(s.cpus.len(), 4);
    assert_eq!(
        s.cpus[1],
        CpuAffinity {
            apic_id: 1,
            domain: 0x0102_0304,
            enabled: true,
            x2apic: false
        }
    );
    assert!(!s.cpus[2].enabled);
    assert_eq!(
        s.cpus[3],
        CpuAffinity {
            apic_id: 0x1_0000,
            domain: 7,
            enabled: true,
            x2apic: true
        }
    );
    assert_eq!(s.memory.len(), 4);
    assert_eq!(s.memory[1].base, MIB);
    assert_eq!(s.memory[1].end(), 512 * MIB);
    let hot = s.memory[2];
    assert!(hot.enabled && hot.hot_pluggable && hot.non_volatile);
    assert_eq!((hot.domain, hot.length_bytes), (1, 1024 * MIB));
    assert!(!s.memory[3].enabled);
    assert_eq!(s.other_entries, 1);
}

#[test]
fn empty_srat_has_no_entries() {
    assert_eq!(parse_srat(&srat(&[])).unwrap(), Srat::default());
}

#[test]
fn bytes_after_the_header_length_are_ignored() {
    let mut t = srat(&[lapic(0, 0, 1)]);
    t.extend_from_slice(&[0xff; 7]);
    assert_eq!(parse_srat(&t).unwrap().cpus.len(), 1);
}

#[test]
fn malformed_tables_are_errors() {
    let good = srat(&[lapic(0, 0, 1), memory(0, MIB, 0, 1)]);
    // Every truncation of the buffer is an error, never a panic.
    for cut in 0..good.len() {
        assert!(parse_srat(&good[..cut]).is_err(), "cut at {cut}");
    }
    assert_eq!(
        parse_srat(&good[..10]),
        Err(SratError::TooShort { bytes: 10 })
    );
    assert_eq!(
        parse_srat(&with_header(b"APIC", &[0; 12])),
        Err(SratError::Signature(*b"APIC"))
    );
    let mut bad_sum = good.clone();
    bad_sum[40] ^= 1;
    assert_eq!(parse_srat(&bad_sum), Err(SratError::Checksum));
    let mut long = good.clone();
    long[4..8].copy_from_slice(&1000u32.to_le_bytes());
    fix_checksum(&mut long);
    assert!(matches!(
        parse_srat(&long),
        Err(SratError::Length { header: 1000, .. })
    ));
}

#[test]
fn bad_entries_are_errors() {
    // A memory entry cut short by the table's own length.
    let mut e = memory(0, MIB, 0, 1);
    e.truncate(30);
    assert_eq!(
        parse_srat(&srat(&[e])),
        Err(SratError::Truncated { offset: 48 })
    );
    // A zero length would loop forever; a short one would read past the entry.
    for (kind, length) in [(0u8, 0u8), (1, 16), (2, 16), (9, 1)] {
        let e = [vec![kind, length], vec![0; 38]].concat();
        assert_eq!(
            parse_srat(&srat(&[e])),
            Err(SratError::EntryLength {
                offset: 48,
                kind,
                length
            })
        );
    }
    // A lone type byte at the end.
    assert_eq!(
        parse_srat(&srat(&[vec![1]])),
        Err(SratError::Truncated { offset: 48 })
    );
}

fn slit(n: u64, matrix: &[u8]) -> Vec<u8> {
    let mut body = n.to_le_bytes().to_vec();
    body.extend_from_slice(matrix);
    with_header(b"SLIT", &body)
}

#[test]
fn slit_distances() {
    let s = parse_slit(&slit(2, &[10, 21, 22, 10])).unwrap();
    assert_eq!(s.localities(), 2);
    assert_eq!(s.distance(0, 0), Some(10));
    assert_eq!(s.distance(0, 1), Some(21));
    assert_eq!(s.distance(1, 0), Some(22));
    assert_eq!(s.distance(2, 0), None);
}

#[test]
fn malformed_slits_are_errors() {
    assert_eq!(
        parse_slit(&slit(3, &[10, 20, 20, 10])),
        Err(SratError::Matrix { localities: 3 })
    );
    assert_eq!(
        parse_slit(&slit(u64::MAX, &[10])),
        Err(SratError::Matrix {
            localities: u64::MAX
        })
    );
    let good = slit(2, &[10, 20, 20, 10]);
    for cut in 0..good.len() {
        assert!(parse_slit(&good[..cut]).is_err(), "cut at {cut}");
    }
    assert!(matches!(
        parse_slit(&srat(&[])),
        Err(SratError::Signature(_))
    ));
}

//! The image reader: checks everything up front, then hands out borrowed views.

use alloc::vec::Vec;

use crate::bytes::Cursor;
use crate::checksum::{Crc32c, content_hash};
use crate::error::FormatError;
use crate::graph::check_image;
use crate::layout::{Header, RECORD_LEN, Section, header_len};
use crate::manifest_codec;
use crate::model::{Chunk, Manifest};
use crate::program::{self, Program, ProgramView};
use crate::strings::StringTable;
use crate::workload::{self, WorkloadView};

/// One chunk of a parsed image. The name and module bytes borrow from the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkView<'a> {
    /// The chunk's unique name.
    pub name: &'a str,
    /// The WebAssembly module bytes (not copied).
    pub module: &'a [u8],
    /// FNV-1a 64 of `module`, checked at parse time.
    pub content_hash: u64,
    /// The decoded manifest.
    pub manifest: Manifest,
}

impl ChunkView<'_> {
    /// Validates the module against the supported WebAssembly feature set.
    #[cfg(feature = "validate")]
    pub fn validate(&self) -> Result<(), crate::ModuleError> {
        crate::validate_module(self.module)
    }

    /// An owned copy, as the writer takes it.
    pub fn to_chunk(&self) -> Chunk {
        Chunk {
            name: self.name.into(),
            module: self.module.to_vec(),
            manifest: self.manifest.clone(),
        }
    }
}

/// A parsed, fully checked chunk image.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    major: u16,
    minor: u16,
    chunks: Vec<ChunkView<'a>>,
    programs: Vec<ProgramView<'a>>,
    workload: WorkloadView<'a>,
}

impl<'a> Image<'a> {
    /// Parses and checks `bytes`: header, version, checksums, every offset, the manifests,
    /// unique names, providers and the absence of dependency cycles. Module bytes are not
    /// validated as WebAssembly here; see [`crate::validate_module`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let header = Header::decode(bytes)?;
        if header.total_len != bytes.len() as u64 {
            return Err(if header.total_len > bytes.len() as u64 {
                FormatError::Truncated {
                    what: "image",
                    offset: bytes.len(),
                    needed: usize::try_from(header.total_len).unwrap_or(usize::MAX),
                }
            } else {
                FormatError::BadHeader("trailing bytes after image")
            });
        }
        check_tiling(&header, bytes.len())?;
        let strings_raw = section(bytes, header.strings, "string table")?;
        let records_raw = section(bytes, header.records, "records")?;
        let manifests_raw = section(bytes, header.manifests, "manifests")?;
        let modules_raw = section(bytes, header.modules, "modules")?;
        let programs_raw = if header.major >= 2 {
            section(bytes, header.programs, "programs")?
        } else {
            &[]
        };
        let workload_raw = if header.major >= 3 {
            section(bytes, header.workload, "workload")?
        } else {
            &[]
        };

        let mut crc = Crc32c::new();
        crc.update(strings_raw);
        crc.update(records_raw);
        crc.update(manifests_raw);
        crc.update(programs_raw);
        crc.update(workload_raw);
        if crc.finish() != header.tables_crc {
            return Err(FormatError::TablesChecksum {
                stored: header.tables_crc,
                computed: crc.finish(),
            });
        }

        let count = header.chunk_count as usize;
        if count.checked_mul(RECORD_LEN) != Some(records_raw.len()) {
            return Err(FormatError::BadHeader("record section size"));
        }
        let strings = StringTable::new(strings_raw);
        let mut cur = Cursor::new(records_raw, "records");
        let mut chunks = Vec::with_capacity(count);
        let mut module_ranges = Vec::with_capacity(count);
        let mut manifest_ranges = Vec::with_capacity(count);
        for index in 0..count {
            let name = strings.read(&mut cur, "chunk name")?;
            let module_range = (cur.u32()? as usize, cur.u32()? as usize);
            let manifest_range = (cur.u32()? as usize, cur.u32()? as usize);
            let stored_hash = cur.u64()?;
            let stored_crc = cur.u32()?;
            if cur.u32()? != 0 {
                return Err(FormatError::BadHeader("reserved record field"));
            }
            let module = sub(modules_raw, module_range, "module range")?;
            let manifest_bytes = sub(manifests_raw, manifest_range, "manifest range")?;
            let mut crc = Crc32c::new();
            crc.update(module);
            crc.update(manifest_bytes);
            if crc.finish() != stored_crc {
                return Err(FormatError::ChunkChecksum { index });
            }
            if content_hash(module) != stored_hash {
                return Err(FormatError::ContentHash { index });
            }
            let mut mcur = Cursor::new(manifest_bytes, "manifest");
            let manifest = manifest_codec::decode(&mut mcur, &strings, index, header.major)?;
            module_ranges.push(module_range);
            manifest_ranges.push(manifest_range);
            chunks.push(ChunkView {
                name,
                module,
                content_hash: stored_hash,
                manifest,
            });
        }
        check_disjoint_cover(&mut module_ranges, modules_raw.len(), "modules")?;
        check_disjoint_cover(&mut manifest_ranges, manifests_raw.len(), "manifests")?;
        check_image(chunks.iter().map(|c| (c.name, &c.manifest)))?;
        let programs = if header.major >= 2 {
            program::decode(programs_raw, header.major)?
        } else {
            Vec::new()
        };
        program::check(
            programs
                .iter()
                .map(|p| (p.chunk, p.files.iter().map(|f| f.0).collect())),
            |name| chunks.iter().any(|c| c.name == name),
        )?;
        let workload = if header.major >= 3 {
            workload::decode(workload_raw)?
        } else {
            WorkloadView::default()
        };
        Ok(Self {
            major: header.major,
            minor: header.minor,
            chunks,
            programs,
            workload,
        })
    }

    /// The engine settings and traces shipped with the image (empty before version 3).
    pub fn workload(&self) -> &WorkloadView<'a> {
        &self.workload
    }

    /// The major version of the image's layout (1; 2 with a programs section; 3 with a
    /// workload section or a program with a default environment).
    pub fn major_version(&self) -> u16 {
        self.major
    }

    /// Every program (version 2 images), in image order.
    pub fn programs(&self) -> &[ProgramView<'a>] {
        &self.programs
    }

    /// The program settings of chunk `name`, if it has any.
    pub fn program(&self, name: &str) -> Option<&ProgramView<'a>> {
        self.programs.iter().find(|p| p.chunk == name)
    }

    /// The minor version of the writer that produced the image.
    pub fn minor_version(&self) -> u16 {
        self.minor
    }

    /// All chunks, in image order.
    pub fn chunks(&self) -> &[ChunkView<'a>] {
        &self.chunks
    }

    /// Owned copies of all chunks, e.g. to write the image again with recorded profiles.
    /// Pass [`Image::to_programs`] along to `write_image_with_programs` so the programs
    /// section is kept (or use [`Image::rewrite`]).
    pub fn to_chunks(&self) -> Vec<Chunk> {
        self.chunks.iter().map(ChunkView::to_chunk).collect()
    }

    /// Owned copies of all programs (the run settings of command chunks).
    pub fn to_programs(&self) -> Vec<Program> {
        self.programs.iter().map(ProgramView::to_program).collect()
    }

    /// The image written again from its parts (chunks, programs, workload): byte for byte the bytes
    /// it was parsed from when those came from this writer.
    pub fn rewrite(&self) -> Result<Vec<u8>, FormatError> {
        let workload = (self.major >= 3).then(|| self.workload.to_workload());
        crate::writer::write_image_full(&self.to_chunks(), &self.to_programs(), workload.as_ref())
    }

    /// The chunk named `name`.
    pub fn chunk(&self, name: &str) -> Option<&ChunkView<'a>> {
        self.chunks.iter().find(|c| c.name == name)
    }
}

fn section<'a>(bytes: &'a [u8], s: Section, what: &'static str) -> Result<&'a [u8], FormatError> {
    sub(bytes, (s.offset as usize, s.len as usize), what)
}

fn sub<'a>(
    bytes: &'a [u8],
    (offset, len): (usize, usize),
    what: &'static str,
) -> Result<&'a [u8], FormatError> {
    offset
        .checked_add(len)
        .and_then(|end| bytes.get(offset..end))
        .ok_or(FormatError::OutOfRange(what))
}

/// The four sections must lie after the header, not overlap, and together with the header cover
/// the whole image, so that every byte is under some checksum.
fn check_tiling(header: &Header, image_len: usize) -> Result<(), FormatError> {
    let mut sections = alloc::vec![
        header.strings,
        header.records,
        header.manifests,
        header.modules,
    ];
    if header.major >= 2 {
        sections.push(header.programs);
    }
    if header.major >= 3 {
        sections.push(header.workload);
    }
    let header_len = header_len(header.major);
    for s in &sections {
        if (s.offset as usize) < header_len || s.end() > image_len as u64 {
            return Err(FormatError::OutOfRange("section"));
        }
    }
    sections.sort_by_key(|s| (s.offset, s.len));
    let mut at = header_len as u64;
    for s in &sections {
        if u64::from(s.offset) < at {
            return Err(FormatError::Overlap("sections"));
        }
        if u64::from(s.offset) > at {
            return Err(FormatError::BadHeader("gap between sections"));
        }
        at = s.end();
    }
    if at != image_len as u64 {
        return Err(FormatError::BadHeader("sections do not cover the image"));
    }
    Ok(())
}

/// Ranges inside one section must not overlap and must cover it exactly.
fn check_disjoint_cover(
    ranges: &mut [(usize, usize)],
    len: usize,
    what: &'static str,
) -> Result<(), FormatError> {
    ranges.sort_unstable();
    let mut at = 0usize;
    for &(offset, range_len) in ranges.iter() {
        if offset < at {
            return Err(FormatError::Overlap(what));
        }
        if offset > at {
            return Err(FormatError::OutOfRange(what));
        }
        at = offset.saturating_add(range_len);
    }
    if at != len {
        return Err(FormatError::OutOfRange(what));
    }
    Ok(())
}

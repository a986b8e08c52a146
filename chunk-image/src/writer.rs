//! The image writer.

use alloc::vec::Vec;

use crate::bytes::{PutLe, to_u32};
use crate::checksum::{Crc32c, content_hash};
use crate::error::FormatError;
use crate::graph::check_image;
use crate::layout::{Header, RECORD_LEN, Section, VERSION_MINOR, header_len};
use crate::manifest_codec;
use crate::model::Chunk;
use crate::program::{self, Program};
use crate::strings::StringTableBuilder;
use crate::workload::{self, Workload};

/// Writes `chunks` into a new image.
///
/// Fails on duplicate names, unresolved chunk imports, dependency cycles, or sizes beyond the
/// format's 32-bit fields: the writer never produces an image the reader would reject.
pub fn write_image(chunks: &[Chunk]) -> Result<Vec<u8>, FormatError> {
    write_image_with_programs(chunks, &[])
}

/// Writes `chunks` and the run settings of their `programs`. Without programs the image is
/// version 1 (byte for byte what older writers produced); with them, version 2, or version 3
/// when a program has a default environment.
pub fn write_image_with_programs(
    chunks: &[Chunk],
    programs: &[Program],
) -> Result<Vec<u8>, FormatError> {
    write_image_full(chunks, programs, None)
}

/// Writes `chunks`, their `programs` and a `workload` section. The version is the oldest that
/// holds what is given: 1 without programs or workload, 2 with programs, 3 with a workload.
pub fn write_image_full(
    chunks: &[Chunk],
    programs: &[Program],
    workload: Option<&Workload>,
) -> Result<Vec<u8>, FormatError> {
    check_image(chunks.iter().map(|c| (c.name.as_str(), &c.manifest)))?;
    program::check(
        programs.iter().map(|p| {
            (
                p.chunk.as_str(),
                p.files.iter().map(|f| f.0.as_str()).collect(),
            )
        }),
        |name| chunks.iter().any(|c| c.name == name),
    )?;
    // Version 3 holds a workload section and programs with environments; version 2 programs
    // without them; version 1 neither.
    let major: u16 = if chunks.iter().any(|c| !c.manifest.fits_version_3()) {
        manifest_codec::OBJECTS_VERSION
    } else if workload.is_some() {
        3
    } else {
        program::major_for(programs)
    };
    // A version-3 image always has a workload section (the default one when none is given).
    let workload_bytes = if major >= 3 {
        workload::encode(workload.unwrap_or(&Workload::default()))?
    } else {
        Vec::new()
    };
    let programs_bytes = if major >= 2 {
        program::encode(programs, major)?
    } else {
        Vec::new()
    };

    let mut strings = StringTableBuilder::default();
    let mut records = Vec::with_capacity(chunks.len() * RECORD_LEN);
    let mut manifests = Vec::new();
    let mut module_offset = 0usize;
    for chunk in chunks {
        let manifest_start = manifests.len();
        manifest_codec::encode(&chunk.manifest, major, &mut strings, &mut manifests)?;
        let manifest_bytes = manifests.get(manifest_start..).unwrap_or_default();

        let mut crc = Crc32c::new();
        crc.update(&chunk.module);
        crc.update(manifest_bytes);

        strings.put(&mut records, &chunk.name)?;
        records.put_u32(to_u32(module_offset, "modules")?);
        records.put_u32(to_u32(chunk.module.len(), "module")?);
        records.put_u32(to_u32(manifest_start, "manifests")?);
        records.put_u32(to_u32(manifest_bytes.len(), "manifest")?);
        records.put_u64(content_hash(&chunk.module));
        records.put_u32(crc.finish());
        records.put_u32(0);
        module_offset = module_offset
            .checked_add(chunk.module.len())
            .ok_or(FormatError::TooLarge("modules"))?;
    }
    let strings = strings.into_bytes();

    let mut at = header_len(major);
    let mut section = |len: usize, what: &'static str| -> Result<Section, FormatError> {
        let s = Section {
            offset: to_u32(at, what)?,
            len: to_u32(len, what)?,
        };
        at = at.checked_add(len).ok_or(FormatError::TooLarge(what))?;
        Ok(s)
    };
    let strings_section = section(strings.len(), "string table")?;
    let records_section = section(records.len(), "records")?;
    let manifests_section = section(manifests.len(), "manifests")?;
    let modules_section = section(module_offset, "modules")?;
    let programs_section = if major >= 2 {
        section(programs_bytes.len(), "programs")?
    } else {
        Section::default()
    };
    let workload_section = if major >= 3 {
        section(workload_bytes.len(), "workload")?
    } else {
        Section::default()
    };

    let mut tables_crc = Crc32c::new();
    tables_crc.update(&strings);
    tables_crc.update(&records);
    tables_crc.update(&manifests);
    tables_crc.update(&programs_bytes);
    tables_crc.update(&workload_bytes);

    let header = Header {
        major,
        minor: VERSION_MINOR,
        total_len: at as u64,
        chunk_count: to_u32(chunks.len(), "chunk count")?,
        strings: strings_section,
        records: records_section,
        manifests: manifests_section,
        modules: modules_section,
        programs: programs_section,
        workload: workload_section,
        tables_crc: tables_crc.finish(),
    };

    let mut image = Vec::with_capacity(at);
    image.extend_from_slice(&header.encode());
    image.extend_from_slice(&strings);
    image.extend_from_slice(&records);
    image.extend_from_slice(&manifests);
    for chunk in chunks {
        image.extend_from_slice(&chunk.module);
    }
    image.extend_from_slice(&programs_bytes);
    image.extend_from_slice(&workload_bytes);
    Ok(image)
}

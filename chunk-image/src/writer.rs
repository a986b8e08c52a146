//! The image writer.

use alloc::vec::Vec;

use crate::bytes::{PutLe, to_u32};
use crate::checksum::{Crc32c, content_hash};
use crate::error::FormatError;
use crate::graph::check_image;
use crate::layout::{HEADER_LEN, Header, RECORD_LEN, Section, VERSION_MINOR};
use crate::manifest_codec;
use crate::model::Chunk;
use crate::strings::StringTableBuilder;

/// Writes `chunks` into a new image.
///
/// Fails on duplicate names, unresolved chunk imports, dependency cycles, or sizes beyond the
/// format's 32-bit fields: the writer never produces an image the reader would reject.
pub fn write_image(chunks: &[Chunk]) -> Result<Vec<u8>, FormatError> {
    check_image(chunks.iter().map(|c| (c.name.as_str(), &c.manifest)))?;

    let mut strings = StringTableBuilder::default();
    let mut records = Vec::with_capacity(chunks.len() * RECORD_LEN);
    let mut manifests = Vec::new();
    let mut module_offset = 0usize;
    for chunk in chunks {
        let manifest_start = manifests.len();
        manifest_codec::encode(&chunk.manifest, &mut strings, &mut manifests)?;
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

    let mut at = HEADER_LEN;
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

    let mut tables_crc = Crc32c::new();
    tables_crc.update(&strings);
    tables_crc.update(&records);
    tables_crc.update(&manifests);

    let header = Header {
        minor: VERSION_MINOR,
        total_len: at as u64,
        chunk_count: to_u32(chunks.len(), "chunk count")?,
        strings: strings_section,
        records: records_section,
        manifests: manifests_section,
        modules: modules_section,
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
    Ok(image)
}

//! File versions without running anything on the host: pull just the PE headers and the resource
//! section of a remote DLL over SMB, and read its VS_FIXEDFILEINFO locally.
//!
//! A system DLL is megabytes; its version resource is a few hundred bytes in `.rsrc`. Reading the
//! first 4 KiB tells where `.rsrc` is, a second ranged read fetches it, and the resource tree is
//! walked in those bytes alone: RT_VERSION, its first name, its first language, the data entry,
//! then VS_VERSIONINFO's fixed part.
//!
//! The file comes from a target, so it is untrusted input, and this walker is hive's own: every
//! offset is bounds-checked, nothing is allocated beyond what was read, and there is no `unsafe`.
//! (`pelite` did this before; fuzzing showed it dereferences a misaligned pointer when a hostile
//! resource directory sits at an odd offset — a process abort in debug builds, undefined
//! behaviour in release — and the version reader allocated what the section table claimed.)

use crate::catalog::model::Version;

/// How much of the file start holds the DOS, PE and section headers in practice.
pub const HEADER_BYTES: u64 = 4096;

/// The largest resource section read: real ones are kilobytes to a few megabytes.
pub const MAX_RESOURCE_BYTES: u64 = 64 << 20;

/// Where the resource section lies in the file, read from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSpan {
    /// File offset of the section's raw data (PointerToRawData).
    pub offset: u64,
    /// Its length in the file (SizeOfRawData).
    pub len: u64,
    /// The RVA the section's first byte loads at: data entries point by RVA.
    pub section_rva: u32,
    /// The RVA of the resource directory (data directory 2), inside the section.
    pub root_rva: u32,
}

/// Why a version could not be read. Each names what was wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    #[error("not a PE file ({0})")]
    NotPe(&'static str),
    #[error("the file has no resource section")]
    NoResources,
    #[error("the file has no version resource")]
    NoVersion,
    #[error("the resource section is implausibly large ({0} bytes)")]
    TooLarge(u64),
    #[error("PE parse error: {0}")]
    Parse(String),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Find the resource section from the first bytes of a file (at least the headers).
pub fn resource_span(head: &[u8]) -> Result<ResourceSpan, PeError> {
    if head.get(0..2) != Some(b"MZ") {
        return Err(PeError::NotPe("no MZ signature"));
    }
    let pe = u32_at(head, 0x3c).ok_or(PeError::NotPe("truncated DOS header"))? as usize;
    if head.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(PeError::NotPe("no PE signature within the first 4 KiB"));
    }
    let coff = pe + 4;
    let sections = u16_at(head, coff + 2).ok_or(PeError::NotPe("truncated COFF header"))? as usize;
    let opt_size = u16_at(head, coff + 16).ok_or(PeError::NotPe("truncated COFF header"))? as usize;
    let opt = coff + 20;
    let magic = u16_at(head, opt).ok_or(PeError::NotPe("truncated optional header"))?;
    let dirs = match magic {
        0x10b => opt + 96,
        0x20b => opt + 112,
        _ => return Err(PeError::NotPe("unknown optional header magic")),
    };
    // Data directory 2 is the resource table.
    let rsrc_rva =
        u32_at(head, dirs + 2 * 8).ok_or(PeError::NotPe("truncated data directories"))?;
    if rsrc_rva == 0 {
        return Err(PeError::NoResources);
    }
    let table = opt + opt_size;
    let mut span = None;
    for i in 0..sections {
        let s = table + i * 40;
        let vsize = u32_at(head, s + 8).ok_or(PeError::NotPe("section table beyond 4 KiB"))?;
        let va = u32_at(head, s + 12).ok_or(PeError::NotPe("section table beyond 4 KiB"))?;
        let raw_size = u32_at(head, s + 16).ok_or(PeError::NotPe("section table beyond 4 KiB"))?;
        let raw_ptr = u32_at(head, s + 20).ok_or(PeError::NotPe("section table beyond 4 KiB"))?;
        if rsrc_rva >= va && rsrc_rva < va.saturating_add(vsize.max(raw_size)) {
            span = Some(ResourceSpan {
                offset: raw_ptr as u64,
                len: raw_size as u64,
                section_rva: va,
                root_rva: rsrc_rva,
            });
        }
    }
    let span = span.ok_or(PeError::NoResources)?;
    if span.len > MAX_RESOURCE_BYTES {
        return Err(PeError::TooLarge(span.len));
    }
    Ok(span)
}

/// Read the fixed file version from the headers and the resource section's bytes (what the two
/// ranged reads returned; `head` is only needed for [`resource_span`]).
pub fn version_from_parts(
    _head: &[u8],
    span: &ResourceSpan,
    rsrc: &[u8],
) -> Result<Version, PeError> {
    let rsrc = &rsrc[..rsrc.len().min(span.len as usize)];
    version_in_resources(rsrc, span)
}

/// Read the fixed file version of a whole PE file (PE32 or PE32+).
pub fn version_from_file(bytes: &[u8]) -> Result<Version, PeError> {
    let span = resource_span(bytes)?;
    let start = usize::try_from(span.offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(span.len as usize).min(bytes.len());
    let rsrc = bytes.get(start..end).unwrap_or(&[]);
    version_in_resources(rsrc, &span)
}

const RT_VERSION: u32 = 16;
const SUBDIRECTORY: u32 = 0x8000_0000;
const FIXED_SIGNATURE: u32 = 0xFEEF_04BD;

fn bad(what: &str) -> PeError {
    PeError::Parse(what.to_string())
}

/// The OffsetToData of a directory's entry: the one with integer id `want`, or the first.
fn dir_entry(rsrc: &[u8], dir: usize, want: Option<u32>) -> Result<Option<u32>, PeError> {
    let named =
        u16_at(rsrc, dir + 12).ok_or_else(|| bad("resource directory beyond the section"))?;
    let ids = u16_at(rsrc, dir + 14).ok_or_else(|| bad("resource directory beyond the section"))?;
    for i in 0..named as usize + ids as usize {
        let e = dir + 16 + i * 8;
        let (Some(name), Some(to)) = (u32_at(rsrc, e), u32_at(rsrc, e + 4)) else {
            return Err(bad("resource directory entries beyond the section"));
        };
        match want {
            None => return Ok(Some(to)),
            Some(id) if name & SUBDIRECTORY == 0 && name == id => return Ok(Some(to)),
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Walk RT_VERSION → first name → first language → data entry → VS_FIXEDFILEINFO.
fn version_in_resources(rsrc: &[u8], span: &ResourceSpan) -> Result<Version, PeError> {
    let root = span
        .root_rva
        .checked_sub(span.section_rva)
        .ok_or(PeError::NoResources)? as usize;
    let mut at = root;
    for level in 0..3 {
        let want = (level == 0).then_some(RT_VERSION);
        let to = dir_entry(rsrc, at, want)?.ok_or(PeError::NoVersion)?;
        let is_dir = to & SUBDIRECTORY != 0;
        if is_dir != (level < 2) {
            return Err(bad("resource tree is not three levels deep"));
        }
        // Offsets inside the tree are relative to the resource directory's start.
        at = root
            .checked_add((to & !SUBDIRECTORY) as usize)
            .ok_or_else(|| bad("resource offset overflows"))?;
    }
    let (Some(data_rva), Some(size)) = (u32_at(rsrc, at), u32_at(rsrc, at + 4)) else {
        return Err(bad("version data entry beyond the section"));
    };
    let data = data_rva
        .checked_sub(span.section_rva)
        .and_then(|o| rsrc.get(o as usize..(o as usize).checked_add(size as usize)?))
        .ok_or_else(|| bad("version resource outside the resource section"))?;
    fixed_file_version(data)
}

/// VS_VERSIONINFO: wLength, wValueLength, wType, "VS_VERSION_INFO\0" (UTF-16), padding to 32
/// bits, then VS_FIXEDFILEINFO (signature, struct version, file version MS, LS, ...).
fn fixed_file_version(vi: &[u8]) -> Result<Version, PeError> {
    let value_len = u16_at(vi, 2).ok_or(PeError::NoVersion)?;
    if value_len < 52 {
        return Err(PeError::NoVersion);
    }
    let key: Vec<u8> = "VS_VERSION_INFO"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    if vi.get(6..6 + key.len()) != Some(&key[..]) {
        return Err(bad("version resource does not start with VS_VERSION_INFO"));
    }
    let fixed = 40; // 6 + 32 bytes of key, aligned to 4
    if u32_at(vi, fixed) != Some(FIXED_SIGNATURE) {
        return Err(bad("VS_FIXEDFILEINFO signature missing"));
    }
    let (Some(ms), Some(ls)) = (u32_at(vi, fixed + 8), u32_at(vi, fixed + 12)) else {
        return Err(PeError::NoVersion);
    };
    Ok(Version(vec![ms >> 16, ms & 0xffff, ls >> 16, ls & 0xffff]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use winsim::pe::{Machine, PeSpec, Version as PeVersion};

    fn dll(machine: Machine) -> Vec<u8> {
        winsim::pe::build(&PeSpec::dll(
            PeVersion::new(5, 0, 2195, 3645),
            machine,
            "idq.dll",
        ))
    }

    #[test]
    fn whole_file_versions_for_pe32_and_pe32_plus() {
        for m in [Machine::I386, Machine::Amd64] {
            assert_eq!(
                version_from_file(&dll(m)).unwrap().to_string(),
                "5.0.2195.3645"
            );
        }
    }

    #[test]
    fn two_ranged_reads_are_enough() {
        for m in [Machine::I386, Machine::Amd64] {
            let file = dll(m);
            let head = &file[..(HEADER_BYTES as usize).min(file.len())];
            let span = resource_span(head).unwrap();
            let rsrc = &file[span.offset as usize..(span.offset + span.len) as usize];
            let v = version_from_parts(head, &span, rsrc).unwrap();
            assert_eq!(v.to_string(), "5.0.2195.3645");
            assert!(
                span.len < 4096,
                "the version read moves a few KiB, not the file"
            );
        }
    }

    /// Regression (found by tests/fuzz_pe.rs, which counts the allocation): a section claiming
    /// raw data near 2 GiB made the reader allocate the whole claimed file for a 2.5 KiB input.
    /// Other sections' claims no longer matter: the version comes from the headers and the
    /// resource bytes alone.
    #[test]
    fn other_sections_claiming_gigabytes_change_nothing() {
        for m in [Machine::I386, Machine::Amd64] {
            let mut file = dll(m);
            let pe = u32_at(&file, 0x3c).unwrap() as usize;
            let opt_size = u16_at(&file, pe + 20).unwrap() as usize;
            let text = pe + 24 + opt_size; // the first section, .text
            // PointerToRawData of .text: the old reader sized its buffer to end past it.
            file[text + 20..text + 24].copy_from_slice(&0x7fff_ff00u32.to_le_bytes());
            let head = &file[..(HEADER_BYTES as usize).min(file.len())];
            let span = resource_span(head).unwrap();
            assert_ne!(span.offset, 0x7fff_ff00);
            let rsrc = &file[span.offset as usize..(span.offset + span.len) as usize];
            let v = version_from_parts(head, &span, rsrc).unwrap();
            assert_eq!(v.to_string(), "5.0.2195.3645");
        }
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        assert_eq!(
            resource_span(b"hello"),
            Err(PeError::NotPe("no MZ signature"))
        );
        let mut f = dll(Machine::I386);
        f[0x3c] = 0xff;
        assert!(matches!(resource_span(&f), Err(PeError::NotPe(_))));
        assert!(version_from_file(b"MZ").is_err());
        // Truncated everywhere: never a panic.
        let f = dll(Machine::Amd64);
        for cut in (0..f.len()).step_by(7) {
            let _ = resource_span(&f[..cut]);
            let _ = version_from_file(&f[..cut]);
        }
    }
}

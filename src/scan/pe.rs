//! File versions without running anything on the host: pull just the PE headers and the resource
//! section of a remote DLL over SMB, and let `pelite` read its VS_VERSIONINFO locally.
//!
//! A system DLL is megabytes; its version resource is a few hundred bytes in `.rsrc`. Reading the
//! first 4 KiB tells where `.rsrc` is, a second ranged read fetches it, and the two are laid into a
//! buffer side by side, with the section's raw-data pointer moved to where its bytes now are, so
//! `pelite` sees a small file holding just the headers and the resources — all it reads to answer
//! a version query. The buffer is as large as what was read, never what the (untrusted) section
//! table claims: a hostile or corrupt header must not make the orchestrator allocate gigabytes.

use pelite::pe32::Pe as _;
use pelite::pe64::Pe as _;

use crate::catalog::model::Version;

/// How much of the file start holds the DOS, PE and section headers in practice.
pub const HEADER_BYTES: u64 = 4096;

/// Where the resource section lies in the file, read from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSpan {
    pub offset: u64,
    pub len: u64,
    /// Where the resource section's header sits in the first bytes (its PointerToRawData is
    /// rewritten when the section is laid beside the headers).
    pub section_entry: usize,
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
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
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
            span = Some((raw_ptr as u64, raw_size as u64, s));
        }
    }
    let (offset, len, section_entry) = span.ok_or(PeError::NoResources)?;
    if len > MAX_RESOURCE_BYTES {
        return Err(PeError::TooLarge(len));
    }
    Ok(ResourceSpan {
        offset,
        len,
        section_entry,
    })
}

/// The largest resource section read: real ones are kilobytes to a few megabytes.
pub const MAX_RESOURCE_BYTES: u64 = 64 << 20;

/// Read the fixed file version from the headers and the resource section's bytes.
pub fn version_from_parts(
    head: &[u8],
    span: &ResourceSpan,
    rsrc: &[u8],
) -> Result<Version, PeError> {
    let rsrc = &rsrc[..rsrc.len().min(span.len as usize)];
    let at = head.len().next_multiple_of(0x200);
    let pointer = u32::try_from(at).map_err(|_| PeError::TooLarge(at as u64))?;
    let mut image = Vec::with_capacity(at + rsrc.len());
    image.extend_from_slice(head);
    image.resize(at, 0);
    image.extend_from_slice(rsrc);
    image
        .get_mut(span.section_entry + 20..span.section_entry + 24)
        .ok_or(PeError::NotPe("section table beyond the headers read"))?
        .copy_from_slice(&pointer.to_le_bytes());
    version_from_file(&image)
}

/// Read the fixed file version of a whole PE file (PE32 or PE32+).
pub fn version_from_file(bytes: &[u8]) -> Result<Version, PeError> {
    let fixed = match pelite::PeFile::from_bytes(bytes) {
        Ok(pelite::Wrap::T32(pe)) => {
            let res = pe.resources().map_err(|_| PeError::NoResources)?;
            let vi = res.version_info().map_err(|_| PeError::NoVersion)?;
            vi.fixed().copied()
        }
        Ok(pelite::Wrap::T64(pe)) => {
            let res = pe.resources().map_err(|_| PeError::NoResources)?;
            let vi = res.version_info().map_err(|_| PeError::NoVersion)?;
            vi.fixed().copied()
        }
        Err(e) => return Err(PeError::Parse(e.to_string())),
    };
    let f = fixed.ok_or(PeError::NoVersion)?;
    let v = f.dwFileVersion;
    Ok(Version(vec![
        v.Major as u32,
        v.Minor as u32,
        v.Patch as u32,
        v.Build as u32,
    ]))
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
            assert_ne!(span.section_entry, text);
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

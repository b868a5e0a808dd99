//! Real PE images with a `VS_VERSIONINFO` resource, generated from nothing.
//!
//! hive decides "patched or not" by the file version of a binary on the target, read from the PE
//! file's version resource (over SMB, parsed locally). The simulated fleet therefore needs binaries
//! that are genuine PE32/PE32+ images — ones `pelite`, python `pefile` and `objdump -p` accept — at
//! exactly the versions the fleet file names. No toolchain or Windows SDK is needed: the image is laid
//! out here byte by byte (headers, a tiny `.text`, a `.rsrc` holding `RT_VERSION`), with an optional
//! overlay after the last section where simulated installers carry their manifest, just as real
//! self-extracting installers carry their cabinet after the PE stub.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A four-part Windows file version (`5.0.2195.4000`), ordered the way Windows compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Version(pub [u16; 4]);

impl Version {
    pub const fn new(a: u16, b: u16, c: u16, d: u16) -> Self {
        Version([a, b, c, d])
    }
    /// The `dwFileVersionMS` / `dwFileVersionLS` pair of `VS_FIXEDFILEINFO`.
    fn ms_ls(self) -> (u32, u32) {
        let [a, b, c, d] = self.0.map(u32::from);
        ((a << 16) | b, (c << 16) | d)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// A version string that is not one to four dot-separated numbers below 65536.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not a Windows file version (expected up to four numbers like 5.0.2195.4000)")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;
    /// Accepts `a.b.c.d` (missing parts are 0), and also `a,b,c,d` as rc files write it. Text after
    /// the numbers, as in `5.0.2195.1620 (SP2.010101-1234)`, is ignored like Windows tools do.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let head = s.split_whitespace().next().unwrap_or("");
        let mut parts = [0u16; 4];
        let mut n = 0;
        for piece in head.split(['.', ',']) {
            if n == 4 {
                return Err(BadVersion(s.to_string()));
            }
            parts[n] = piece
                .trim()
                .parse()
                .map_err(|_| BadVersion(s.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(BadVersion(s.to_string()));
        }
        Ok(Version(parts))
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The CPU an image is built for; picks PE32 (`i386`) or PE32+ (`amd64`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    #[default]
    I386,
    Amd64,
}

/// Whether the image is a program or a library (sets the DLL flag and `VFT_APP`/`VFT_DLL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageKind {
    #[default]
    Exe,
    Dll,
}

/// Everything that makes one generated image.
#[derive(Debug, Clone, Default)]
pub struct PeSpec {
    pub machine: Machine,
    pub kind: ImageKind,
    pub file_version: Version,
    pub product_version: Version,
    /// Extra `StringFileInfo` entries (CompanyName, FileDescription, ...). FileVersion and
    /// ProductVersion are always written from the versions above.
    pub strings: Vec<(String, String)>,
    /// Bytes appended after the last section (the installer manifest of a simulated package).
    pub overlay: Vec<u8>,
}

impl PeSpec {
    /// A library at `version` (file and product version alike), described like a Microsoft binary.
    pub fn dll(version: Version, machine: Machine, original_name: &str) -> Self {
        PeSpec {
            machine,
            kind: ImageKind::Dll,
            file_version: version,
            product_version: version,
            strings: vec![
                ("CompanyName".into(), "Microsoft Corporation".into()),
                ("OriginalFilename".into(), original_name.into()),
                (
                    "ProductName".into(),
                    "Microsoft\u{ae} Windows\u{ae} Operating System".into(),
                ),
            ],
            overlay: Vec::new(),
        }
    }
}

const FILE_ALIGN: usize = 0x200;
const SECTION_ALIGN: u32 = 0x1000;
const TEXT_RVA: u32 = 0x1000;
const RSRC_RVA: u32 = 0x2000;
const HEADERS_SIZE: usize = 0x200;
const E_LFANEW: usize = 0x80;
const RT_VERSION: u32 = 16;
const LANG_EN_US: u16 = 0x0409;
const CP_UNICODE: u16 = 0x04b0;

/// Lays out a complete PE image for `spec`.
pub fn build(spec: &PeSpec) -> Vec<u8> {
    let pe64 = spec.machine == Machine::Amd64;
    // mov eax, 1; ret 0Ch (stdcall DllMain) / ret: never executed, but a real entry point.
    let code: &[u8] = if pe64 {
        &[0xB8, 1, 0, 0, 0, 0xC3]
    } else {
        &[0xB8, 1, 0, 0, 0, 0xC2, 0x0C, 0x00]
    };
    // Filler after the entry point: a fixed pseudo-random byte run, so the image has the byte
    // spread of a real one (pefile warns about files that are mostly one byte value).
    let mut text = code.to_vec();
    let mut x: u32 = 0x2545_F491;
    while text.len() < 2 * FILE_ALIGN {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        text.push((x >> 24) as u8);
    }
    let rsrc = resource_section(spec, RSRC_RVA);
    let text_raw = align(text.len(), FILE_ALIGN);
    let rsrc_raw = align(rsrc.len(), FILE_ALIGN);
    let size_of_image = RSRC_RVA + align(rsrc.len(), SECTION_ALIGN as usize) as u32;

    let mut out = vec![0u8; HEADERS_SIZE];
    dos_header(&mut out);
    let mut h = Vec::with_capacity(0x180);
    h.extend_from_slice(b"PE\0\0");
    coff_header(&mut h, spec);
    optional_header(&mut h, spec, text_raw, rsrc_raw, size_of_image, rsrc.len());
    section_header(
        &mut h,
        b".text\0\0\0",
        text.len(),
        TEXT_RVA,
        text_raw,
        HEADERS_SIZE,
        0x6000_0020,
    );
    let rsrc_ptr = HEADERS_SIZE + text_raw;
    section_header(
        &mut h,
        b".rsrc\0\0\0",
        rsrc.len(),
        RSRC_RVA,
        rsrc_raw,
        rsrc_ptr,
        0x4000_0040,
    );
    out[E_LFANEW..E_LFANEW + h.len()].copy_from_slice(&h);

    out.extend_from_slice(&text);
    out.resize(HEADERS_SIZE + text_raw, 0);
    out.extend_from_slice(&rsrc);
    out.resize(rsrc_ptr + rsrc_raw, 0);
    // The checksum covers the whole file, overlay included, as CheckSumMappedFile computes it.
    out.extend_from_slice(&spec.overlay);
    let checksum = pe_checksum(&out, checksum_offset());
    out[checksum_offset()..checksum_offset() + 4].copy_from_slice(&checksum.to_le_bytes());
    out
}

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

fn dos_header(out: &mut [u8]) {
    out[0..2].copy_from_slice(b"MZ");
    // e_cblp, e_cp, e_cparhdr, e_maxalloc, e_sp, e_lfarlc as a linker writes them.
    let words: [(usize, u16); 6] = [
        (2, 0x90),
        (4, 3),
        (8, 4),
        (0x0C, 0xFFFF),
        (0x10, 0xB8),
        (0x18, 0x40),
    ];
    for (at, v) in words {
        out[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    out[0x3C..0x40].copy_from_slice(&(E_LFANEW as u32).to_le_bytes());
    // The classic real-mode stub: print the message and exit.
    let stub: [u8; 14] = [
        0x0E, 0x1F, 0xBA, 0x0E, 0x00, 0xB4, 0x09, 0xCD, 0x21, 0xB8, 0x01, 0x4C, 0xCD, 0x21,
    ];
    out[0x40..0x40 + stub.len()].copy_from_slice(&stub);
    let msg = b"This program cannot be run in DOS mode.\r\r\n$";
    out[0x4E..0x4E + msg.len()].copy_from_slice(msg);
}

fn coff_header(h: &mut Vec<u8>, spec: &PeSpec) {
    let pe64 = spec.machine == Machine::Amd64;
    let machine: u16 = if pe64 { 0x8664 } else { 0x014C };
    put16(h, machine);
    put16(h, 2); // sections
    put32(h, 0x3B9A_CA00); // TimeDateStamp: fixed, so images are reproducible
    put32(h, 0);
    put32(h, 0);
    put16(h, if pe64 { 240 } else { 224 });
    // EXECUTABLE_IMAGE, plus 32BIT_MACHINE for PE32 or LARGE_ADDRESS_AWARE for PE32+.
    let mut ch: u16 = 0x0002 | if pe64 { 0x0020 } else { 0x0100 };
    if spec.kind == ImageKind::Dll {
        ch |= 0x2000;
    }
    put16(h, ch);
}

fn optional_header(
    h: &mut Vec<u8>,
    spec: &PeSpec,
    text_raw: usize,
    rsrc_raw: usize,
    size_of_image: u32,
    rsrc_len: usize,
) {
    let pe64 = spec.machine == Machine::Amd64;
    let dll = spec.kind == ImageKind::Dll;
    put16(h, if pe64 { 0x20B } else { 0x10B });
    h.extend_from_slice(&[7, 10]); // linker 7.10
    put32(h, text_raw as u32);
    put32(h, rsrc_raw as u32);
    put32(h, 0);
    put32(h, TEXT_RVA); // entry point
    put32(h, TEXT_RVA); // BaseOfCode
    if pe64 {
        put64(h, if dll { 0x1_8000_0000 } else { 0x1_4000_0000 });
    } else {
        put32(h, RSRC_RVA); // BaseOfData
        put32(h, if dll { 0x1000_0000 } else { 0x0040_0000 });
    }
    put32(h, SECTION_ALIGN);
    put32(h, FILE_ALIGN as u32);
    let [fa, fb, _, _] = spec.file_version.0;
    for v in [5u16, 0, fa, fb, 5, 0] {
        put16(h, v); // OS version, image version, subsystem version
    }
    put32(h, 0); // Win32VersionValue
    put32(h, size_of_image);
    put32(h, HEADERS_SIZE as u32);
    put32(h, 0); // CheckSum, patched in build()
    put16(h, if dll { 2 } else { 3 }); // subsystem: GUI for DLLs, console for programs
    put16(h, if pe64 { 0x8160 } else { 0 });
    let sizes = [0x10_0000u64, 0x1000, 0x10_0000, 0x1000];
    for s in sizes {
        if pe64 {
            put64(h, s)
        } else {
            put32(h, s as u32)
        }
    }
    put32(h, 0); // LoaderFlags
    put32(h, 16);
    for dir in 0..16 {
        if dir == 2 {
            put32(h, RSRC_RVA);
            put32(h, rsrc_len as u32);
        } else {
            put64(h, 0);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn section_header(
    h: &mut Vec<u8>,
    name: &[u8; 8],
    virtual_size: usize,
    rva: u32,
    raw_size: usize,
    raw_ptr: usize,
    characteristics: u32,
) {
    h.extend_from_slice(name);
    put32(h, virtual_size as u32);
    put32(h, rva);
    put32(h, raw_size as u32);
    put32(h, raw_ptr as u32);
    put32(h, 0);
    put32(h, 0);
    put16(h, 0);
    put16(h, 0);
    put32(h, characteristics);
}

fn checksum_offset() -> usize {
    // PE signature (4) + COFF (20) + 64 bytes into the optional header, same for PE32 and PE32+.
    E_LFANEW + 4 + 20 + 64
}

/// The image checksum as `CheckSumMappedFile` computes it: 16-bit one's-complement style sum of
/// the file with the checksum field taken as zero, plus the file length.
fn pe_checksum(bytes: &[u8], skip: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in bytes.chunks(2).enumerate() {
        let at = i * 2;
        if at >= skip && at < skip + 4 {
            continue;
        }
        let word = u16::from_le_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u64::from(word);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    (sum as u32) + bytes.len() as u32
}

/// The `.rsrc` section: a three-level directory (type 16 → id 1 → en-US) and the version block.
fn resource_section(spec: &PeSpec, section_rva: u32) -> Vec<u8> {
    let mut r = Vec::new();
    let dir = |r: &mut Vec<u8>, id: u32, target: u32| {
        put32(r, 0);
        put32(r, 0);
        put16(r, 4);
        put16(r, 0);
        put16(r, 0); // named entries
        put16(r, 1); // id entries
        put32(r, id);
        put32(r, target);
    };
    dir(&mut r, RT_VERSION, 0x8000_0000 | 24);
    dir(&mut r, 1, 0x8000_0000 | 48);
    dir(&mut r, u32::from(LANG_EN_US), 72);
    let data_offset = 88u32;
    let version = version_info(spec);
    put32(&mut r, section_rva + data_offset);
    put32(&mut r, version.len() as u32);
    put32(&mut r, 0); // code page
    put32(&mut r, 0);
    debug_assert_eq!(r.len(), data_offset as usize);
    r.extend_from_slice(&version);
    r
}

/// `VS_VERSIONINFO` with `VS_FIXEDFILEINFO`, a `StringFileInfo` (040904b0) and `VarFileInfo`.
fn version_info(spec: &PeSpec) -> Vec<u8> {
    let mut fixed = Vec::with_capacity(52);
    let (fms, fls) = spec.file_version.ms_ls();
    let (pms, pls) = spec.product_version.ms_ls();
    let file_type = if spec.kind == ImageKind::Dll { 2 } else { 1 };
    for v in [
        0xFEEF_04BD,
        0x0001_0000,
        fms,
        fls,
        pms,
        pls,
        0x3F,
        0,
        0x0004_0004,
        file_type,
        0,
        0,
        0,
    ] {
        put32(&mut fixed, v);
    }
    let mut strings = vec![
        block(
            "FileVersion",
            &text_value(&spec.file_version.to_string()),
            1,
            &[],
        ),
        block(
            "ProductVersion",
            &text_value(&spec.product_version.to_string()),
            1,
            &[],
        ),
    ];
    for (k, v) in &spec.strings {
        strings.push(block(k, &text_value(v), 1, &[]));
    }
    let table = block("040904b0", &[], 1, &strings);
    let string_info = block("StringFileInfo", &[], 1, &[table]);
    let mut translation = Vec::new();
    put16(&mut translation, LANG_EN_US);
    put16(&mut translation, CP_UNICODE);
    let var = block("Translation", &translation, 0, &[]);
    let var_info = block("VarFileInfo", &[], 1, &[var]);
    block("VS_VERSION_INFO", &fixed, 0, &[string_info, var_info])
}

/// A UTF-16 text value with its terminating NUL, as `String` blocks hold it.
fn text_value(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect();
    v.shrink_to_fit();
    v
}

/// One version-resource node: wLength, wValueLength, wType, key, padding, value, padding, children.
/// `wValueLength` counts WORDs for text nodes (type 1) and bytes for binary ones, as Windows does.
fn block(key: &str, value: &[u8], kind: u16, children: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![0u8; 6];
    b.extend(key.encode_utf16().chain([0]).flat_map(u16::to_le_bytes));
    pad4(&mut b);
    b.extend_from_slice(value);
    for child in children {
        pad4(&mut b);
        b.extend_from_slice(child);
    }
    let value_len = if kind == 1 {
        value.len() / 2
    } else {
        value.len()
    };
    let len = b.len() as u16;
    b[0..2].copy_from_slice(&len.to_le_bytes());
    b[2..4].copy_from_slice(&(value_len as u16).to_le_bytes());
    b[4..6].copy_from_slice(&kind.to_le_bytes());
    b
}

fn pad4(b: &mut Vec<u8>) {
    b.resize(align(b.len(), 4), 0);
}
fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// What the version resource of a PE file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersionInfo {
    /// `VS_FIXEDFILEINFO.dwFileVersion` — what hive compares.
    pub file_version: Version,
    pub product_version: Version,
    /// The `FileVersion` string of the first translation, if any (may carry text after the numbers).
    pub file_version_string: Option<String>,
}

/// Why a file's version could not be read.
#[derive(Debug, Error)]
pub enum PeReadError {
    #[error("not a PE image: {0}")]
    NotPe(pelite::Error),
    #[error("PE image has no version resource: {0}")]
    NoVersion(String),
}

/// Reads the version resource of a PE image held in `bytes` (the same way hive reads a file it
/// pulled over SMB).
pub fn read_version(bytes: &[u8]) -> Result<FileVersionInfo, PeReadError> {
    let file = pelite::PeFile::from_bytes(bytes).map_err(PeReadError::NotPe)?;
    let resources = file.resources().map_err(PeReadError::NotPe)?;
    let info = resources
        .version_info()
        .map_err(|e| PeReadError::NoVersion(e.to_string()))?;
    let fixed = info
        .fixed()
        .ok_or_else(|| PeReadError::NoVersion("VS_FIXEDFILEINFO is missing".into()))?;
    let v = |x: &pelite::image::VS_VERSION| Version([x.Major, x.Minor, x.Patch, x.Build]);
    let file_version_string = info
        .translation()
        .first()
        .and_then(|lang| info.value(*lang, "FileVersion"));
    Ok(FileVersionInfo {
        file_version: v(&fixed.dwFileVersion),
        product_version: v(&fixed.dwProductVersion),
        file_version_string,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order_like_windows() {
        let a: Version = "5.0.2195.4000".parse().unwrap();
        let b: Version = "5.0.2195.3800 (SP2.010101-1234)".parse().unwrap();
        assert!(a > b);
        assert_eq!(
            "10.0.17763".parse::<Version>().unwrap(),
            Version::new(10, 0, 17763, 0)
        );
        assert!("5.x".parse::<Version>().is_err());
        assert!("1.2.3.4.5".parse::<Version>().is_err());
        assert!("70000".parse::<Version>().is_err());
    }

    #[test]
    fn generated_images_read_back_through_pelite() {
        for machine in [Machine::I386, Machine::Amd64] {
            let mut spec = PeSpec::dll(Version::new(5, 0, 2195, 4000), machine, "foo.dll");
            spec.product_version = Version::new(5, 0, 2195, 1);
            spec.overlay = b"trailing payload".to_vec();
            let bytes = build(&spec);
            let info = read_version(&bytes).unwrap();
            assert_eq!(info.file_version, spec.file_version);
            assert_eq!(info.product_version, spec.product_version);
            assert_eq!(info.file_version_string.as_deref(), Some("5.0.2195.4000"));
            assert!(bytes.ends_with(b"trailing payload"));
        }
    }

    #[test]
    fn garbage_is_not_a_pe() {
        assert!(matches!(read_version(b"hello"), Err(PeReadError::NotPe(_))));
    }
}

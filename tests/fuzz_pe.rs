//! The file-version reader never panics, hangs or balloons on a damaged or hostile PE file.
//!
//! hive reads `VS_FIXEDFILEINFO` from files on the targets: the first 4 KiB, then the resource
//! section, parsed locally (src/scan/pe.rs). A file on a compromised or broken host is untrusted
//! input. The seeds are real images: winsim's PE builder (PE32 and PE32+, as the simulated fleet
//! serves them) and the two MSVC-built DLLs that ship with the `pelite` crate hive depends on
//! (`demo/Demo.dll`, `demo/Demo64.dll`, each with a version resource). Mutations write hostile
//! numbers into every header field that steers parsing (e_lfanew, section count, optional header
//! size and magic, the resource directory, each section's addresses and sizes, every resource
//! directory entry and data entry) besides the usual byte edits.
//!
//! Budgets: see tests/fuzz_support (`HIVE_FUZZ_SECONDS=600 cargo test -p hive --test fuzz_pe --
//! --nocapture --test-threads 1`).

mod fuzz_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use fuzz_support::{FieldAt, Grammar, Outcome, apply, mutations};
use hive::scan::pe::{HEADER_BYTES, resource_span, version_from_file, version_from_parts};
use winsim::pe::{Machine, PeSpec, Version};

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// Every header and resource-tree field of a well-formed image that a parser follows.
fn fields(f: &[u8]) -> Vec<FieldAt> {
    let at = |offset, width| FieldAt { offset, width };
    let pe = u32_at(f, 0x3c);
    let coff = pe + 4;
    let opt = coff + 20;
    let pe64 = u16_at(f, opt) == 0x20b;
    let dirs = opt + if pe64 { 112 } else { 96 };
    let mut out = vec![
        at(0x3c, 4),
        at(coff + 2, 2),
        at(coff + 16, 2),
        at(opt, 2),
        at(opt + 56, 4),  // SizeOfImage
        at(opt + 60, 4),  // SizeOfHeaders
        at(dirs - 4, 4),  // NumberOfRvaAndSizes
        at(dirs + 16, 4), // resource RVA
        at(dirs + 20, 4), // resource size
    ];
    let rsrc_rva = u32_at(f, dirs + 16);
    let table = opt + u16_at(f, coff + 16);
    let mut rsrc = None;
    for i in 0..u16_at(f, coff + 2) {
        let s = table + i * 40;
        for k in [8, 12, 16, 20] {
            out.push(at(s + k, 4));
        }
        let (vsize, va, raw) = (u32_at(f, s + 8), u32_at(f, s + 12), u32_at(f, s + 20));
        if rsrc_rva >= va && rsrc_rva < va + vsize.max(u32_at(f, s + 16)) {
            rsrc = Some((raw, va));
        }
    }
    // The resource tree: directories (named and id counts, each entry's name and offset) and
    // data entries (RVA and size), then the VS_VERSIONINFO header lengths.
    let (raw, va) = rsrc.expect("seed has a resource section");
    let mut stack = vec![(0usize, 0)];
    while let Some((dir, depth)) = stack.pop() {
        let d = raw + dir;
        out.push(at(d + 12, 2));
        out.push(at(d + 14, 2));
        let n = u16_at(f, d + 12) + u16_at(f, d + 14);
        for e in 0..n {
            let entry = d + 16 + e * 8;
            out.push(at(entry, 4));
            out.push(at(entry + 4, 4));
            let off = u32_at(f, entry + 4);
            if off & 0x8000_0000 != 0 && depth < 3 {
                stack.push((off & 0x7fff_ffff, depth + 1));
            } else if off & 0x8000_0000 == 0 {
                let data = raw + off;
                out.push(at(data, 4));
                out.push(at(data + 4, 4));
                let vi = u32_at(f, data) - va + raw;
                for k in [0, 2, 4, 0x28, 0x2a, 0x2c] {
                    out.push(at(vi + k, 2));
                }
            }
        }
    }
    out.retain(|x| x.offset + x.width <= f.len());
    out
}

/// The seeds: generated images for both machines, and the real DLLs shipped with pelite.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for m in [Machine::I386, Machine::Amd64] {
        let spec = PeSpec::dll(Version::new(5, 0, 2195, 3645), m, "idq.dll");
        out.push((format!("winsim {m:?}"), winsim::pe::build(&spec)));
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let src = home.join("registry/src");
    let demo = std::fs::read_dir(&src)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the pelite sources hold the real DLL seeds)",
                src.display()
            )
        })
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("pelite-0.10.0/demo"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no pelite-0.10.0/demo below {}", src.display()));
    for name in ["Demo.dll", "Demo64.dll"] {
        let bytes = std::fs::read(demo.join(name)).unwrap();
        out.push((format!("pelite {name}"), bytes));
    }
    out
}

/// Counts the largest single allocation, so a hostile header that makes the reader allocate
/// gigabytes fails the test instead of passing on an overcommitting kernel.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most one version read may allocate at once: the bytes it was given, twice, plus slack.
fn allocation_limit(file_len: usize) -> usize {
    2 * file_len + (1 << 20)
}

const PE: Grammar = Grammar {
    bytes: &[0, 1, 0x7f, 0x80, 0xff, b'M', b'Z', b'P', b'E'],
    tokens: &[
        "\u{0}\u{0}\u{0}\u{0}",
        "MZ",
        "PE\u{0}\u{0}",
        "VS_VERSION_INFO",
    ],
    values: &[],
    slots: &[],
    nests: &[],
};

/// What the scanner does with a file: two ranged reads, then the local parse; plus the
/// whole-file reader the probe side uses.
fn check(file: &[u8]) -> Outcome {
    LARGEST.store(0, Ordering::Relaxed);
    let outcome = read_versions(file);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= allocation_limit(file.len()),
        "reading a {} byte file allocated {largest} bytes at once",
        file.len()
    );
    outcome
}

fn read_versions(file: &[u8]) -> Outcome {
    let head = &file[..(HEADER_BYTES as usize).min(file.len())];
    let mut accepted = false;
    if let Ok(span) = resource_span(head) {
        // A ranged read past the end returns what there is, like an SMB read at EOF.
        let start = (span.offset as usize).min(file.len());
        let end = (span.offset.saturating_add(span.len) as usize).min(file.len());
        match version_from_parts(head, &span, &file[start..end]) {
            Ok(v) => {
                assert_eq!(v.0.len(), 4);
                accepted = true;
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    match version_from_file(file) {
        Ok(_) => accepted = true,
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if accepted {
        Outcome::Accepted
    } else {
        Outcome::Refused
    }
}

#[test]
fn the_seeds_have_versions() {
    for (name, bytes) in seeds() {
        // hive's own walker agrees with pelite (through winsim's reader) on well-formed files.
        let ours = version_from_file(&bytes).unwrap();
        let pelite = winsim::pe::read_version(&bytes).unwrap().file_version.0;
        let pelite: Vec<u32> = pelite.iter().map(|&p| u32::from(p)).collect();
        assert_eq!(ours.0, pelite, "{name}");
        assert!(!fields(&bytes).is_empty(), "{name}");
        assert_eq!(check(&bytes), Outcome::Accepted, "{name}");
    }
}

#[test]
fn pe_version_reader_survives_mutations() {
    let seeds: Vec<_> = seeds()
        .into_iter()
        .map(|(n, b)| {
            let f = fields(&b);
            (n, b, f)
        })
        .collect();
    let most = seeds.iter().map(|s| s.2.len()).max().unwrap();
    let tally = fuzz_support::run(
        "PE version reader",
        1500,
        (0..seeds.len(), mutations(&PE, most)),
        |(i, muts)| {
            let (_, bytes, fields) = &seeds[i];
            check(&apply(&PE, bytes, fields, &muts))
        },
    );
    assert!(tally.accepted > 0, "no mutated file kept its version");
}

/// Regression (found by this fuzzer, minimal input: one section header field set to
/// 0x7fffffff): the reader sized its buffer by what the section table claimed and allocated
/// 2 GiB for a 2.5 KiB file. Every section field of every seed, set to huge values, must now
/// stay within the allocation limit.
#[test]
fn section_tables_claiming_gigabytes_allocate_nothing_of_the_sort() {
    for (name, seed) in seeds() {
        let pe = u32_at(&seed, 0x3c);
        let table = pe + 24 + u16_at(&seed, pe + 20);
        for i in 0..u16_at(&seed, pe + 6) {
            for k in [8, 12, 16, 20] {
                for v in [0x7fff_ffffu32, 0xffff_ffff, 0x8000_0000, 0x0400_0000] {
                    let mut f = seed.clone();
                    let at = table + i * 40 + k;
                    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    let _ = check(&f); // asserts the allocation limit
                    let _ = name;
                }
            }
        }
    }
}

/// Regression (found by this fuzzer): a resource directory or section at an offset that is not a
/// multiple of 4 made pelite dereference a misaligned pointer — a process abort in a debug build,
/// undefined behaviour in release. hive walks the resource tree itself now.
#[test]
fn resources_at_odd_offsets_are_errors_not_aborts() {
    for (name, seed) in seeds() {
        let f = fields(&seed);
        // fields() lists the resource directory RVA at index 7 and each section's fields from 9.
        let rva_field = f[7];
        for delta in 1..4u32 {
            let mut m = seed.clone();
            let at = rva_field.offset;
            let v = u32::from_le_bytes(m[at..at + 4].try_into().unwrap()) + delta;
            m[at..at + 4].copy_from_slice(&v.to_le_bytes());
            let _ = check(&m);
            for s in f[9..].chunks(4).take(8) {
                if s.len() == 4 {
                    let mut m = seed.clone();
                    let at = s[3].offset; // PointerToRawData
                    let v = u32::from_le_bytes(m[at..at + 4].try_into().unwrap()) + delta;
                    m[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    let _ = check(&m);
                }
            }
        }
        let _ = name;
    }
}

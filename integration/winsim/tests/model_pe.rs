//! Generated PE files are real: pelite, python `pefile` and GNU `objdump -p` all read them.

use std::path::Path;
use std::process::Command;

use winsim::pe::{self, ImageKind, Machine, PeSpec, Version};

fn samples() -> Vec<(&'static str, PeSpec)> {
    let mut exe = PeSpec::dll(
        Version::new(10, 0, 17763, 5576),
        Machine::Amd64,
        "ntoskrnl.exe",
    );
    exe.kind = ImageKind::Exe;
    exe.product_version = Version::new(10, 0, 17763, 1);
    let mut dll = PeSpec::dll(Version::new(5, 0, 2195, 4000), Machine::I386, "foo.dll");
    dll.overlay = b"overlay bytes after the last section".to_vec();
    vec![("ntoskrnl.exe", exe), ("foo.dll", dll)]
}

fn write_samples(dir: &Path) -> Vec<(String, PeSpec)> {
    samples()
        .into_iter()
        .map(|(name, spec)| {
            let path = dir.join(name);
            std::fs::write(&path, pe::build(&spec)).unwrap();
            (path.display().to_string(), spec)
        })
        .collect()
}

#[test]
fn pelite_reads_fixed_and_string_versions() {
    for (_, spec) in samples() {
        let bytes = pe::build(&spec);
        let file = pelite::PeFile::from_bytes(&bytes).unwrap();
        let info = file.resources().unwrap().version_info().unwrap();
        let fixed = info.fixed().unwrap();
        let [a, b, c, d] = spec.file_version.0;
        assert_eq!(
            (
                fixed.dwFileVersion.Major,
                fixed.dwFileVersion.Minor,
                fixed.dwFileVersion.Patch,
                fixed.dwFileVersion.Build
            ),
            (a, b, c, d)
        );
        let lang = info.translation()[0];
        assert_eq!(
            info.value(lang, "FileVersion").unwrap(),
            spec.file_version.to_string()
        );
        assert_eq!(
            info.value(lang, "ProductVersion").unwrap(),
            spec.product_version.to_string()
        );
        assert_eq!(
            info.value(lang, "CompanyName").unwrap(),
            "Microsoft Corporation"
        );
    }
}

#[test]
fn python_pefile_reads_the_same_versions_and_a_valid_checksum() {
    let python = std::env::var("HIVE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("HIVE_TEST_PYTHON is not set: run this test through integration/test.sh (it builds the venv with pefile)")
    });
    let dir = tempfile::tempdir().unwrap();
    let files = write_samples(dir.path());
    let script = r#"
import json, sys, pefile
out = []
for path in sys.argv[1:]:
    pe = pefile.PE(path)
    ffi = pe.VS_FIXEDFILEINFO[0]
    strings = {}
    for fi in pe.FileInfo[0]:
        if fi.Key == b'StringFileInfo':
            for st in fi.StringTable:
                strings.update({k.decode(): v.decode() for k, v in st.entries.items()})
    out.append({
        "fixed": "%d.%d.%d.%d" % (ffi.FileVersionMS >> 16, ffi.FileVersionMS & 0xFFFF, ffi.FileVersionLS >> 16, ffi.FileVersionLS & 0xFFFF),
        "product": "%d.%d.%d.%d" % (ffi.ProductVersionMS >> 16, ffi.ProductVersionMS & 0xFFFF, ffi.ProductVersionLS >> 16, ffi.ProductVersionLS & 0xFFFF),
        "strings": strings,
        "checksum_ok": pe.verify_checksum(),
        "overlay": len(pe.get_overlay() or b""),
        "pe32plus": pe.OPTIONAL_HEADER.Magic == 0x20b,
        "warnings": pe.get_warnings(),
    })
print(json.dumps(out))
"#;
    let mut cmd = Command::new(&python);
    cmd.arg("-c").arg(script).args(files.iter().map(|(p, _)| p));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "pefile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for ((_, spec), g) in files.iter().zip(&got) {
        assert_eq!(g["fixed"], spec.file_version.to_string());
        assert_eq!(g["product"], spec.product_version.to_string());
        assert_eq!(g["strings"]["FileVersion"], spec.file_version.to_string());
        assert_eq!(g["pe32plus"], spec.machine == Machine::Amd64);
        assert_eq!(
            g["warnings"],
            serde_json::json!([]),
            "pefile found nothing odd"
        );
        assert_eq!(g["checksum_ok"], true);
        assert_eq!(g["overlay"], spec.overlay.len());
    }
}

#[test]
fn objdump_accepts_the_images_and_finds_the_version_resource() {
    let dir = tempfile::tempdir().unwrap();
    for (path, spec) in write_samples(dir.path()) {
        let out = Command::new("objdump")
            .arg("-p")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("objdump (binutils) is needed: install it through integration/test.sh: {e}")
            });
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "objdump -p {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let format = if spec.machine == Machine::Amd64 {
            "file format pei-x86-64"
        } else {
            "file format pei-i386"
        };
        assert!(text.contains(format), "{text}");
        assert!(
            text.contains("The .rsrc Resource Directory section"),
            "{text}"
        );
        assert!(
            text.contains("Entry: ID: 0x000010"),
            "RT_VERSION (16) type entry: {text}"
        );
        assert!(
            text.contains("Entry: ID: 0x000409"),
            "en-US language entry: {text}"
        );
        assert!(
            text.contains("Leaf: Addr: 0x002058"),
            "version data right after the directory: {text}"
        );
        assert!(
            out.stderr.is_empty(),
            "objdump complained: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

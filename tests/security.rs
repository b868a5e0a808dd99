//! Security properties, end to end: secrets never leave the process, hostile names never reach a
//! path or a command line, words that are legal but odd survive cmd.exe and PowerShell quoting,
//! and TLS is verified unless a certificate is pinned.
//!
//! No harness service is needed: the simulated hosts run in-process (winsim), the HTTPS catalog
//! origin is a local rustls server on 127.0.0.1. `script` (util-linux) gives the demo a pty.

mod tls_support;
/// The 2001 catalog slice for Windows 2000 IIS hosts (kept beside the demo, outside the library).
#[allow(dead_code)]
#[path = "../src/cli/demo/catalog.rs"]
mod demo_catalog;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use hive::deploy::install::installer_line;
use hive::deploy::quote::{command_line, ps_literal};
use hive::inventory::{Inventory, validate_host_name};
use hive::repo::{validate_bulletin_id, validate_file_name};
use sha2::{Digest, Sha256};
use winsim::host::{CommandRequest, SimHost};

fn hive() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hive"));
    // Tests must never talk to a proxy or a real address by accident.
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(v);
    }
    c.stdin(Stdio::null());
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A password no run could print by chance.
fn distinctive_password() -> String {
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
    format!("Tq9-{}-pW!", &hex::encode(h.finalize())[..20])
}

// ---- (a) the password is in no output of a demo run ---------------------------------------------

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The password as it could appear: plain, UTF-16LE (PowerShell's -EncodedCommand payload), and
/// base64 of either at any of the three byte alignments inside a longer base64 text (the middle
/// characters of an encoding do not depend on what surrounds the password).
fn forms(password: &str) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = vec![
        ("plain".to_string(), password.as_bytes().to_vec()),
        ("UTF-16LE".to_string(), utf16le(password)),
    ];
    for (what, bytes) in [
        ("UTF-8", password.as_bytes().to_vec()),
        ("UTF-16LE", utf16le(password)),
    ] {
        for pad in 0..3 {
            let mut b = vec![0u8; pad];
            b.extend_from_slice(&bytes);
            let enc = b64.encode(&b);
            // Skip the group holding the padding bytes and the last (partial) group.
            let start = if pad == 0 { 0 } else { 4 };
            let end = (enc.trim_end_matches('=').len() / 4) * 4 - 4;
            let mid = &enc[start..end];
            assert!(mid.len() >= 12, "password too short to search its base64");
            out.push((
                format!("base64 of {what} at offset {pad}"),
                mid.as_bytes().to_vec(),
            ));
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_clean(what: &str, bytes: &[u8], forms: &[(String, Vec<u8>)]) {
    for (name, needle) in forms {
        assert!(
            !find(bytes, needle),
            "the password ({name}) appears in {what}"
        );
    }
}

fn files_below(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_below(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The work folder `hive demo --keep` printed (`kept <path>`).
fn kept_folder(output: &str) -> PathBuf {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("kept "))
        .unwrap_or_else(|| panic!("the demo did not say what it kept:\n{output}"));
    PathBuf::from(line.trim())
}

/// Everything one demo run left: its output and every file of its work folder.
fn check_demo_leftovers(label: &str, output: &[u8], forms: &[(String, Vec<u8>)]) -> usize {
    assert_clean(&format!("the {label} output"), output, forms);
    let work = kept_folder(&String::from_utf8_lossy(output));
    let mut files = Vec::new();
    files_below(&work, &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&work).unwrap().display().to_string())
        .collect();
    // The grep must have something to grep: the journal, per-host logs, the command lines.
    for want in ["journal.ndjson", "commands.log", "recipe.toml"] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "{label}: no {want} in the kept folder: {names:?}"
        );
    }
    let commands = std::fs::read_to_string(work.join("commands.log")).unwrap();
    assert!(
        commands.contains("powershell") || commands.contains("reg query"),
        "{label}: the command log holds no command: {commands}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_clean(&format!("{label}: {}", f.display()), &bytes, forms);
    }
    files.len()
}

/// The search itself can fail: a password inside a PowerShell -EncodedCommand (base64 of
/// UTF-16LE) or a base64 blob is found at every alignment.
#[test]
fn the_password_search_finds_every_encoded_form() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let password = distinctive_password();
    let forms = forms(&password);
    for prefix in ["", "a", "ab", "$p = '", "net use \\\\x /user:u "] {
        let script = format!("{prefix}{password}; exit 0");
        let hits = |bytes: &[u8]| forms.iter().any(|(_, f)| find(bytes, f));
        assert!(hits(script.as_bytes()), "plain {prefix:?}");
        let encoded = format!(
            "powershell -EncodedCommand {}",
            b64.encode(utf16le(&script))
        );
        assert!(hits(encoded.as_bytes()), "UTF-16LE base64 {prefix:?}");
        assert!(
            hits(b64.encode(script.as_bytes()).as_bytes()),
            "base64 {prefix:?}"
        );
        assert!(hits(&utf16le(&script)), "UTF-16LE {prefix:?}");
    }
}

/// Hosts patched, from the demo's recap line (`62 hosts: 59 patched, ...`).
fn patched(output: &str) -> usize {
    output
        .lines()
        .filter_map(|l| l.split(" hosts: ").nth(1))
        .filter_map(|rest| rest.split(" patched").next()?.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn no_output_of_a_demo_run_holds_the_password() {
    let password = distinctive_password();
    let forms = forms(&password);
    let tmp = tempfile::tempdir().unwrap();

    // 1. Piped: progress as NDJSON.
    let out = hive()
        .args(["demo", "--keep"])
        .env("HIVE_DEMO_PASSWORD", &password)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("{\"record\"")),
        "no NDJSON progress when piped:\n{stdout}"
    );
    assert!(
        patched(&stdout) > 10,
        "the demo did not roll out, so there is little to grep (exit {:?}):\n{}",
        out.status,
        text(&out)
    );
    let n = check_demo_leftovers("NDJSON run", &all, &forms);
    assert!(n > 100, "only {n} files left by the demo");

    // 2. On a terminal: progress bars (a smaller fleet; the same code paths).
    let inner = format!(
        "COLUMNS=120 LINES=40 '{}' demo --keep --hosts 8",
        env!("CARGO_BIN_EXE_hive")
    );
    let out = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .env("HIVE_DEMO_PASSWORD", &password)
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) is needed to run the demo under a pseudo-terminal");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(
        drawn.contains('\u{1b}') && !drawn.contains("{\"record\""),
        "no progress bars under a pty:\n{drawn}"
    );
    assert!(patched(&drawn) > 0, "the demo did not roll out:\n{drawn}");
    let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    check_demo_leftovers("terminal run", &all, &forms);
}

// ---- (b) a credential file others can read is refused -------------------------------------------

#[test]
fn a_world_readable_credential_file_is_refused_by_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let password = distinctive_password();
    let cred = dir.path().join("web01.cred");
    std::fs::write(&cred, format!("{password}\n")).unwrap();
    // Nothing listens here: a host that is reached would fail later, for another reason.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(
        &inv,
        format!(
            "[[host]]\nname = \"web01\"\naddress = \"127.0.0.1\"\nport = {port}\ncredential = \"file:{}\"\n",
            cred.display()
        ),
    )
    .unwrap();
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        serde_json::to_string(&demo_catalog::demo_catalog().to_file()).unwrap(),
    )
    .unwrap();
    let scan = || {
        hive()
            .args(["scan", "-i"])
            .arg(&inv)
            .arg("--catalog")
            .arg(&catalog)
            .args(["--host-timeout", "10"])
            .output()
            .unwrap()
    };
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = scan();
        let t = text(&out);
        // The host whose credential is refused is not scanned: the scan ends with exit 4.
        assert_eq!(out.status.code(), Some(4), "mode {mode:o} accepted:\n{t}");
        assert!(
            t.contains(&cred.display().to_string())
                && t.contains(&format!("{mode:04o}"))
                && t.contains("chmod 600"),
            "mode {mode:o}: the refusal does not name the file, its mode and the fix:\n{t}"
        );
        assert!(!t.contains(&password), "the password was printed");
    }
    // The same file at 0600 is read: the host then fails only because nothing listens.
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    let t = text(&scan());
    assert!(!t.contains("chmod 600"), "a 0600 file was refused:\n{t}");
    assert!(!t.contains(&password), "the password was printed");
}

// ---- (c) hostile names are refused; odd but legal words are quoted right ------------------------

/// Characters that separate paths or mean something to cmd.exe or PowerShell.
const HOSTILE: [&str; 13] = [
    "..", "/", "\\", "&", "|", "^", "%", "\"", "'", "$", "`", "\n", "\r",
];

#[test]
fn hostile_bulletin_ids_host_names_and_file_names_are_refused() {
    for h in HOSTILE {
        let id = format!("MS01-033{h}x");
        let e = validate_bulletin_id(&id).unwrap_err().to_string();
        assert!(e.contains("bulletin id") && e.contains(&id), "{id:?}: {e}");
        let file = format!("Q300972{h}x.exe");
        let e = validate_file_name(&file).unwrap_err().to_string();
        assert!(
            e.contains("file name") && e.contains(&file),
            "{file:?}: {e}"
        );
        let host = format!("web{h}01");
        assert!(validate_host_name(&host).is_err(), "{host:?}");
        let toml = format!(
            "[[host]]\nname = {}\ncredential = \"prompt\"\n",
            toml::Value::String(host.clone())
        );
        let e = Inventory::parse(&toml, Path::new("inv.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inv.toml") && e.contains("not valid"),
            "{host:?}: {e}"
        );
        for field in ["address", "smb_address"] {
            let toml = format!(
                "[[host]]\nname = \"web01\"\n{field} = {}\ncredential = \"prompt\"\n",
                toml::Value::String(host.clone())
            );
            let e = Inventory::parse(&toml, Path::new("inv.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("web01") && e.contains("address"),
                "{field} {host:?}: {e}"
            );
        }
        let toml = format!(
            "[[host]]\nname = \"web01\"\ngroups = [{}]\ncredential = \"prompt\"\n",
            toml::Value::String(format!("canary{h}"))
        );
        assert!(
            Inventory::parse(&toml, Path::new("inv.toml")).is_err(),
            "group {h:?}"
        );
    }
}

#[test]
fn the_cli_refuses_hostile_names_before_touching_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(hive().arg("init").arg(&repo).status().unwrap().success());
    let good = dir.path().join("Q300972.exe");
    std::fs::write(&good, b"MZ").unwrap();
    let before = tree(&repo);
    for h in HOSTILE {
        let id = format!("MS01-033{h}calc");
        let out = hive()
            .args(["triage", "approve", &id, "--installer"])
            .arg(&good)
            .arg("-r")
            .arg(&repo)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{id:?} approved");
        assert!(
            t.contains("bulletin id") && t.contains("is not valid"),
            "{id:?}: {t}"
        );
        let out = hive()
            .args([
                "triage", "ignore", &id, "--reason", "x", "--owner", "me", "-r",
            ])
            .arg(&repo)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{id:?} ignored");
        // `/` and `\n` cannot be in a Unix file name; the others can.
        if !matches!(h, "/" | "\n" | "..") {
            let bad = dir.path().join(format!("Q1{h}calc.exe"));
            std::fs::write(&bad, b"MZ").unwrap();
            let out = hive()
                .args(["triage", "approve", "MS01-033", "--installer"])
                .arg(&bad)
                .arg("-r")
                .arg(&repo)
                .output()
                .unwrap();
            let t = text(&out);
            assert_eq!(out.status.code(), Some(1), "installer {bad:?} approved");
            assert!(
                t.contains("file name") && t.contains("is not valid"),
                "{h:?}: {t}"
            );
        }
    }
    assert_eq!(
        tree(&repo),
        before,
        "a refused command changed the repository"
    );
}

fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    files_below(dir, &mut v);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir.join("hotfixes"))
        .unwrap()
        .chain(std::fs::read_dir(dir.join("ignore")).unwrap())
        .chain(std::fs::read_dir(dir.join("tbe")).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    v.append(&mut dirs);
    v.sort();
    v
}

/// One simulated Windows Server 2019 host (PowerShell, certutil -hashfile), no network.
fn sim_host(drive: &Path) -> Arc<winsim::WinHost> {
    let configs = winsim::fleet::parse(
        "[[host]]\nname = \"QUOTE01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\nubr = 5576\nmachine = \"amd64\"\n",
        Path::new("quote-fleet.toml"),
    )
    .unwrap();
    let fleet = winsim::Fleet::start(&configs, drive).unwrap();
    fleet.hosts()[0].clone()
}

async fn run(host: &winsim::WinHost, line: &str, stdin: &str) -> (String, String, u32) {
    let out = host
        .run(CommandRequest {
            command: line.to_string(),
            arguments: vec![],
            stdin: stdin.as_bytes().to_vec(),
            skip_cmd_shell: false,
        })
        .await;
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.exit_code,
    )
}

/// Paths Windows allows that mean something to cmd.exe or PowerShell.
const ODD_PATHS: [&str; 5] = [
    r"C:\Program Files\hive staging\notes.txt",
    r"C:\Program Files (x86)\A&B Tools\notes (v2).txt",
    r"C:\it's here\x,y;z=1!^~.txt",
    r"C:\cost $5\`tick` [1] {a}.txt",
    r"C:\a&&b||c\a & b.txt",
];

#[tokio::test]
async fn odd_but_legal_paths_survive_cmd_and_powershell_quoting() {
    let tmp = tempfile::tempdir().unwrap();
    let host = sim_host(tmp.path());
    for (i, path) in ODD_PATHS.iter().enumerate() {
        let local = host.host_path(path);
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        let content = format!("file {i} at {path}\r\n");
        std::fs::write(&local, &content).unwrap();
        let sha = hex::encode(Sha256::digest(content.as_bytes()));

        // cmd.exe: `type` and `certutil -hashfile` get the path as one argument.
        let line = command_line(&["type", path]).unwrap();
        let (out, err, code) = run(&host, &line, "").await;
        assert_eq!((out.as_str(), code), (content.as_str(), 0), "{line}: {err}");
        let line = command_line(&["certutil", "-hashfile", path, "SHA256"]).unwrap();
        let (out, err, code) = run(&host, &line, "").await;
        assert_eq!(code, 0, "{line}: {err}");
        assert!(out.replace(' ', "").contains(&sha), "{line}: {out}");

        // PowerShell: a single-quoted literal is taken as is ($, backticks, quotes).
        let script = format!(
            "(Get-FileHash -LiteralPath {} -Algorithm SHA256).Hash\r\n",
            ps_literal(path)
        );
        let (out, err, code) = run(
            &host,
            "powershell.exe -NoProfile -NonInteractive -",
            &script,
        )
        .await;
        assert_eq!(code, 0, "{script}: {err}");
        assert_eq!(out.trim(), sha.to_ascii_uppercase(), "{script}");

        // Unquoted, the same words break apart: the test can fail.
        let naive = format!("certutil -hashfile {path} SHA256");
        let (out, _, code) = run(&host, &naive, "").await;
        assert!(code != 0 || !out.contains(&sha), "{naive} worked unquoted");
    }
}

#[tokio::test]
async fn an_installer_in_an_odd_folder_runs_with_its_switches() {
    let tmp = tempfile::tempdir().unwrap();
    let host = sim_host(tmp.path());
    let path = r"C:\Program Files (x86)\A&B Tools\Q300972 (x86).exe";
    let local = host.host_path(path);
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    winsim::installer::Package::hotfix("Q300972")
        .write_to(&local)
        .unwrap();
    let recipe = hive::catalog::model::InstallerRecipe::legacy_hotfix();
    let line = installer_line(&recipe, path, r"C:\Windows\Temp\x.log").unwrap();
    let (_, err, code) = run(&host, &line, "").await;
    assert_eq!(code, 0, "{line}: {err}");
    assert!(
        host.installed_kbs().iter().any(|k| k == "Q300972"),
        "{line} did not install: {:?}",
        host.installed_kbs()
    );
    // What the host saw is one program and the recipe's switches, in order.
    let log = host.command_log();
    assert_eq!(*log.last().unwrap().command_line, *line);
    // The refused words are refused before anything runs.
    for bad in [r"C:\50%\x.exe", "C:\\a\"b\\x.exe", "C:\\x\r\n.exe"] {
        assert!(installer_line(&recipe, bad, "x.log").is_err(), "{bad:?}");
    }
}

// ---- (d) TLS is verified unless pinned ------------------------------------------------------------

/// An HTTPS origin on 127.0.0.1 whose certificate comes from a CA nobody trusts.
struct Origin {
    port: u16,
    ca_pem: String,
}

async fn https_origin(body: Vec<u8>) -> Origin {
    let (acceptor, ca_pem) = tls_support::localhost_tls("hive security test CA");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = Arc::new(body);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !find(&head, b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Origin { port, ca_pem }
}

#[tokio::test]
async fn catalog_fetch_refuses_an_unknown_certificate_unless_trusted() {
    let body = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/catalogs/cvrf/2024-Mar.xml"),
    )
    .unwrap();
    let sha = hex::encode(Sha256::digest(&body));
    let origin = https_origin(body).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &origin.ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{}/cvrf/2024-Mar.xml", origin.port);
    let cache = dir.path().join("catalog.json");
    let fetch = move |trust: Option<PathBuf>| {
        let mut c = hive();
        c.args([
            "catalog", "fetch", "--url", &url, "--sha256", &sha, "--cache",
        ])
        .arg(&cache);
        if let Some(ca) = trust {
            c.arg("--ca-cert").arg(ca);
        }
        c.output().unwrap()
    };
    let f = fetch.clone();
    let out = tokio::task::spawn_blocking(move || f(None)).await.unwrap();
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unknown CA was accepted:\n{t}"
    );
    assert!(
        t.to_ascii_lowercase().contains("certificate"),
        "the refusal does not say it is the certificate:\n{t}"
    );
    assert!(
        !dir.path().join("catalog.json").exists(),
        "a cache was written"
    );
    let out = tokio::task::spawn_blocking(move || fetch(Some(ca)))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the trusted CA was refused:\n{}",
        text(&out)
    );
}

/// A simulated host with an HTTPS listener (self-signed certificate, as Windows makes one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_winrm_https_host_with_an_unknown_certificate_is_refused_unless_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let password = distinctive_password();
    let mut configs = winsim::fleet::parse(
        "[[host]]\nname = \"TLS01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\nubr = 5576\nmachine = \"amd64\"\n",
        Path::new("tls-fleet.toml"),
    )
    .unwrap();
    configs[0].address = std::net::Ipv4Addr::LOCALHOST;
    // Port 0: the listeners hold kernel-picked ports (a probed port can be taken before the bind).
    configs[0].winrm_port = 0;
    configs[0].winrm_https_port = Some(0);
    configs[0].password = winsim::fleet::Password::new(password.as_str());
    let model = winsim::Fleet::start(&configs, &dir.path().join("drives")).unwrap();
    let identity =
        winsim::server::tls::TlsIdentity::self_signed(&["127.0.0.1".to_string()]).unwrap();
    let der = identity
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    let thumbprint = hex::encode(Sha256::digest(&der));
    let servers = winsim::server::WinrmFleet::start(
        model.sim_hosts(),
        winsim::server::FleetOptions {
            tls: Some(identity),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let https_port = servers.endpoints()[0]
        .https_url
        .as_deref()
        .and_then(winsim::server::url_port)
        .expect("an HTTPS listener");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        serde_json::to_string(&demo_catalog::demo_catalog().to_file()).unwrap(),
    )
    .unwrap();
    let scan = |pin: Option<&str>| {
        let inv = dir.path().join("inv.toml");
        let mut t = format!(
            "[[host]]\nname = \"TLS01\"\naddress = \"127.0.0.1\"\nport = {}\ntransport = \"winrm-https\"\ncredential = \"env:HIVE_SECURITY_PW\"\n",
            https_port
        );
        if let Some(p) = pin {
            t.push_str(&format!("thumbprint = \"{p}\"\n"));
        }
        std::fs::write(&inv, t).unwrap();
        let mut c = hive();
        c.args(["scan", "-o", "json", "--host-timeout", "20", "-i"])
            .arg(&inv)
            .arg("--catalog")
            .arg(&catalog)
            .env("HIVE_SECURITY_PW", &password);
        c
    };
    let run = |mut c: Command| async move {
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    };
    let out = run(scan(None)).await;
    let t = text(&out);
    // The host is not scanned: exit 4.
    assert_eq!(
        out.status.code(),
        Some(4),
        "an unpinned self-signed certificate was accepted:\n{t}"
    );
    assert!(
        t.to_ascii_lowercase().contains("certificate"),
        "the refusal does not name the certificate:\n{t}"
    );
    let wrong = "00".repeat(32);
    let out = run(scan(Some(&wrong))).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "a wrong pin was accepted:\n{}",
        text(&out)
    );
    let out = run(scan(Some(&thumbprint))).await;
    let t = text(&out);
    assert!(
        out.status.success(),
        "the pinned certificate was refused:\n{t}"
    );
    assert!(!t.contains(&password));
    servers.shutdown().await;
}

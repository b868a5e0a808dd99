//! `hive catalog fetch|import|show|diff`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use hive::catalog::fetch::{self, FetchOptions, FetchOutcome, ProxyConfig, Verification};
use hive::catalog::{self, Catalog, ImportReport, MergeReport, store};

use super::args::{CacheArg, timeout_secs};

/// Catalog commands.
#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Download a catalog document over HTTPS (through HTTPS_PROXY or --proxy), verify it, and
    /// merge it into the cached catalog.
    Fetch(FetchArgs),
    /// Import local catalog files (mssecure.xml or CVRF months) without any network — the `-x`
    /// of hfnetchk.
    Import {
        /// mssecure.xml or CVRF month files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        cache: CacheArg,
    },
    /// Summarise the cached catalog, or show one bulletin, patch or KB.
    Show {
        /// A bulletin (MS01-033, CVE-2024-21407), a patch id or a KB (KB5035849).
        item: Option<String>,
        #[command(flatten)]
        output: OutputArg,
        #[command(flatten)]
        cache: CacheArg,
    },
    /// What changed between two catalogs (cached JSON files or source documents).
    Diff {
        /// The older catalog.
        old: PathBuf,
        /// The newer catalog.
        new: PathBuf,
        #[command(flatten)]
        output: OutputArg,
    },
}

/// `-o text|json` of `catalog show` and `catalog diff`.
#[derive(Args)]
pub struct OutputArg {
    /// Output format.
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    output: Format,
    /// Deprecated spelling of `-o json`, kept so existing scripts work.
    #[arg(long, hide = true, conflicts_with = "output")]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl OutputArg {
    fn json(&self) -> bool {
        if self.json {
            eprintln!("hive: --json is deprecated; use -o json");
        }
        self.json || self.output == Format::Json
    }
}

/// `hive catalog fetch`.
#[derive(Args)]
pub struct FetchArgs {
    /// The document's https URL (an MSRC CVRF month, or a mirrored mssecure.xml).
    #[arg(long)]
    url: String,
    #[command(flatten)]
    cache: CacheArg,
    /// Proxy URL (http://host:port). Without it, HTTPS_PROXY / ALL_PROXY / NO_PROXY apply.
    #[arg(long)]
    proxy: Option<String>,
    /// Proxy user; the password is read from HIVE_PROXY_PASSWORD, never from the command line.
    #[arg(long, requires = "proxy")]
    proxy_user: Option<String>,
    /// Pinned SHA-256 of the document.
    #[arg(long, conflicts_with_all = ["public_key", "trust_tls_only"])]
    sha256: Option<String>,
    /// Pinned ed25519 public key (base64) that signs the document.
    #[arg(
        long,
        env = "HIVE_CATALOG_PUBLIC_KEY",
        conflicts_with = "trust_tls_only"
    )]
    public_key: Option<String>,
    /// Where the detached signature is [default: URL + .sig].
    #[arg(long, requires = "public_key")]
    signature_url: Option<String>,
    /// Trust the server's TLS certificate alone (MSRC publishes CVRF unsigned).
    #[arg(long)]
    trust_tls_only: bool,
    /// Extra trusted CA certificate (PEM), e.g. an internal mirror's.
    #[arg(long)]
    ca_cert: Vec<PathBuf>,
    /// Timeout in seconds.
    #[arg(long, default_value_t = 120, value_parser = timeout_secs, value_name = "SECONDS")]
    timeout: u64,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Runs a catalog command.
pub fn run(cmd: CatalogCommand) -> Result<(), Box<dyn std::error::Error>> {
    match cmd {
        CatalogCommand::Fetch(args) => run_fetch(args),
        CatalogCommand::Import { files, cache } => run_import(&files, &cache.path()),
        CatalogCommand::Show {
            item,
            output,
            cache,
        } => {
            let c = store::load(&cache.path())?;
            show(&c, item.as_deref(), output.json())
        }
        CatalogCommand::Diff { old, new, output } => {
            let d = catalog::diff(&load_any(&old)?, &load_any(&new)?);
            print_diff(&d, output.json())
        }
    }
}

fn verification(args: &FetchArgs) -> Result<Verification, Box<dyn std::error::Error>> {
    if let Some(h) = &args.sha256 {
        return Ok(Verification::sha256_from_hex(h)?);
    }
    if let Some(k) = &args.public_key {
        return Ok(Verification::ed25519_from_base64(
            k,
            args.signature_url.clone(),
        )?);
    }
    if args.trust_tls_only {
        return Ok(Verification::TlsOnly);
    }
    Err(
        "say how to verify the download: --sha256, --public-key (or HIVE_CATALOG_PUBLIC_KEY), \
         or --trust-tls-only"
            .into(),
    )
}

fn run_fetch(args: FetchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut roots = Vec::new();
    for p in &args.ca_cert {
        roots.push(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    let opts = FetchOptions {
        url: args.url.clone(),
        cache: args.cache.path(),
        verification: verification(&args)?,
        proxy: args.proxy.as_ref().map(|url| ProxyConfig {
            url: url.clone(),
            user: args.proxy_user.clone(),
            password: std::env::var("HIVE_PROXY_PASSWORD").ok(),
        }),
        extra_roots_pem: roots,
        progress: !args.no_progress,
        timeout: Duration::from_secs(args.timeout),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(fetch::fetch(&opts))? {
        FetchOutcome::NotModified => {
            println!(
                "{}: not modified; {} is current",
                opts.url,
                opts.cache.display()
            );
        }
        FetchOutcome::Updated {
            bytes,
            sha256,
            import,
            merge,
        } => {
            println!("{}: {bytes} bytes, sha256 {sha256}", opts.url);
            print_import(&import);
            print_merge(&merge, &opts.cache);
        }
    }
    Ok(())
}

fn run_import(files: &[PathBuf], cache: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut imported = Vec::new();
    for f in files {
        let (c, report) = store::import_file(f)?;
        println!("{}:", f.display());
        print_import(&report);
        imported.push(c);
    }
    // Locked from reading the cache to replacing it, so a concurrent import cannot lose a month.
    let _lock = store::lock_cache(cache, |lock| {
        eprintln!(
            "waiting for another hive that is updating {} (lock {})",
            cache.display(),
            lock.display()
        );
    })?;
    let mut catalog = store::load_or_empty(cache)?;
    let mut total = MergeReport::default();
    for c in imported {
        let m = catalog.merge(c);
        total.new_bulletins += m.new_bulletins;
        total.new_patches += m.new_patches;
        total.new_products += m.new_products;
        total.updated += m.updated;
    }
    store::save(cache, &catalog)?;
    print_merge(&total, cache);
    Ok(())
}

fn print_import(r: &ImportReport) {
    println!(
        "  {} bulletins, {} patches, {} products; {} patches cannot be judged (no data), {} entries skipped",
        r.bulletins, r.patches, r.products, r.cannot_tell, r.skipped
    );
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}

fn print_merge(m: &MergeReport, cache: &Path) {
    println!(
        "{}: {} new bulletins, {} new patches, {} new products, {} updated",
        cache.display(),
        m.new_bulletins,
        m.new_patches,
        m.new_products,
        m.updated
    );
}

/// A cached catalog (JSON) or a source document, by content.
fn load_any(path: &Path) -> Result<Catalog, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.trim_ascii_start().starts_with(b"{") {
        Ok(store::load(path)?)
    } else {
        Ok(store::import_bytes(&path.display().to_string(), &bytes)?.0)
    }
}

fn show(c: &Catalog, item: Option<&str>, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let Some(item) = item else {
        if json {
            println!("{}", serde_json::to_string_pretty(&c.sources)?);
            return Ok(());
        }
        for s in &c.sources {
            let revision = s
                .revision
                .as_deref()
                .map(|r| format!(" revision {r}"))
                .unwrap_or_default();
            println!(
                "source {} {}{revision}, released {}, from {}",
                s.kind,
                s.id,
                s.released.as_deref().unwrap_or("(no date)"),
                s.location
            );
        }
        let superseded = c
            .patches
            .values()
            .filter(|p| !p.superseded_by.is_empty())
            .count();
        println!(
            "{} bulletins, {} patches ({} superseded), {} products",
            c.bulletins.len(),
            c.patches.len(),
            superseded,
            c.products.len()
        );
        return Ok(());
    };
    if let Some(b) = c.bulletin(item) {
        if json {
            println!("{}", serde_json::to_string_pretty(b)?);
            return Ok(());
        }
        println!("{}  {}", b.id, b.title);
        if let Some(s) = b.severity {
            println!("  severity: {s}");
        }
        if let Some(d) = b.posted {
            println!("  posted: {d}");
        }
        for p in c.patches_of(b) {
            print_patch(c, p);
        }
        return Ok(());
    }
    let patches: Vec<_> = match item.parse::<catalog::Kb>() {
        Ok(kb) => c.patches_with_kb(kb).collect(),
        Err(_) => c.patch(item).into_iter().collect(),
    };
    if patches.is_empty() {
        return Err(format!("no bulletin, patch or KB `{item}` in the catalog").into());
    }
    for p in patches {
        if json {
            println!("{}", serde_json::to_string_pretty(p)?);
        } else {
            print_patch(c, p);
        }
    }
    Ok(())
}

fn print_patch(c: &Catalog, p: &catalog::Patch) {
    let mut line = format!("  patch {}", p.id);
    if let Some(kb) = p.kb.filter(|k| k.to_string() != p.id) {
        line.push_str(&format!(" {kb}"));
    }
    if let Some(s) = &p.subtype {
        line.push_str(&format!(" ({s})"));
    }
    match p.restart {
        Some(r) => line.push_str(&format!(", {r}")),
        None => line.push_str(", restart not stated"),
    }
    println!("{line}");
    for t in &p.targets {
        let name = c
            .product(&t.product)
            .map_or(t.product.as_str(), |x| x.name.as_str());
        println!(
            "    {name}: fixed build {}",
            t.fixed_build.as_deref().unwrap_or("-")
        );
    }
    if !p.supersedes.is_empty() {
        println!("    supersedes {}", join(&p.supersedes));
    }
    if !p.superseded_by.is_empty() {
        println!("    superseded by {}", join(&p.superseded_by));
    }
}

fn join(s: &std::collections::BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn print_diff(d: &catalog::CatalogDiff, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    if d.is_empty() {
        println!("no changes");
        return Ok(());
    }
    let sections = [
        ("new bulletins", &d.new_bulletins),
        ("removed bulletins", &d.removed_bulletins),
        ("changed bulletins", &d.changed_bulletins),
        ("new patches", &d.new_patches),
        ("removed patches", &d.removed_patches),
        ("newly superseded patches", &d.newly_superseded),
        ("changed patches", &d.changed_patches),
        ("new products", &d.new_products),
        ("removed products", &d.removed_products),
    ];
    for (title, list) in sections {
        if list.is_empty() {
            continue;
        }
        println!("{title} ({}):", list.len());
        for id in list {
            println!("  {id}");
        }
    }
    if !d.changed_products.is_empty() {
        println!("changed products ({}):", d.changed_products.len());
        for p in &d.changed_products {
            println!("  {} {}", p.id, p.name);
            for change in &p.changes {
                println!("    {change}");
            }
        }
    }
    Ok(())
}

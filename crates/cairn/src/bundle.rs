//! `cairn bundle` and `cairn verify --bundle`: audit bundles as tar files (docs/FORMAT.md §13);
//! what goes in one and how an unpacked one is checked is `cairn_verify::bundle`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use cairn_format::PublicKey;
use cairn_store::StoreReader;

use crate::audit::load_keys;

#[derive(clap::Args)]
pub struct BundleArgs {
    /// Store to take the segments from: a directory or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    store: String,
    /// The tenant whose segments to bundle (segments whose manifest lists it).
    #[arg(long, value_name = "TENANT")]
    tenant: String,
    /// Only segments with events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only segments with events at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// The archive to write (a tar file; refused if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Redacted disclosure: only the tenant's events, each with its inclusion proof, instead
    /// of whole segments (which hold other tenants' rows too).
    #[arg(long)]
    redacted: bool,
    /// Public keys: the log's (the store's newest checkpoint must verify under one) and the
    /// sealing keys, copied into the bundle for reference; repeatable.
    #[arg(long = "pubkey", value_name = "FILE", required = true)]
    pubkeys: Vec<PathBuf>,
}

pub async fn bundle(args: BundleArgs) -> anyhow::Result<u8> {
    let keys = load_keys(&args.pubkeys)?;
    let time = |t: &Option<String>, flag: &str| {
        t.as_deref()
            .map(cairn_format::event::parse_rfc3339_micros)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
    };
    let sel = cairn_verify::bundle::Selection {
        tenant: args.tenant,
        from_us: time(&args.from, "--from")?,
        to_us: time(&args.to, "--to")?,
        redacted: args.redacted,
    };
    let store = StoreReader::open(&args.store)
        .await
        .with_context(|| format!("opening store {}", args.store))?;
    let objects = cairn_verify::bundle::collect(&store, &keys, &sel).await?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .with_context(|| format!("creating {} (it must not exist)", args.out.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut bytes = 0u64;
    for (name, data) in &objects {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, &data[..])
            .with_context(|| format!("writing {name} into {}", args.out.display()))?;
        bytes += data.len() as u64;
    }
    tar.into_inner()?.flush()?;
    let segments = objects
        .iter()
        .filter(|(n, _)| n.ends_with(".manifest"))
        .count();
    let what = if sel.redacted {
        let events = objects
            .iter()
            .find(|(n, _)| n == cairn_verify::bundle::BUNDLE_PROOFS)
            .map_or(0, |(_, b)| b.iter().filter(|c| **c == b'\n').count());
        format!("{events} event(s) with their proofs (redacted)")
    } else {
        format!("{segments} segment(s)")
    };
    eprintln!(
        "wrote {}: {what} of tenant {}, {bytes} bytes; verify with `cairn verify --bundle {} --pubkey …`",
        args.out.display(),
        sel.tenant,
        args.out.display()
    );
    Ok(0)
}

/// Unpacks `path` (a bundle) into a fresh temporary directory: regular files with relative
/// paths only; anything else is refused.
fn unpack(path: &std::path::Path) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let safe = name
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe || entry.header().entry_type() != tar::EntryType::Regular {
            bail!(
                "{} is not an audit bundle: entry {} is not a regular file with a relative path",
                path.display(),
                name.display()
            );
        }
        let dest = dir.path().join(&name);
        std::fs::create_dir_all(dest.parent().expect("a file has a parent"))?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .with_context(|| format!("{} holds {} twice", path.display(), name.display()))?;
        std::io::copy(&mut entry, &mut out)?;
    }
    Ok(dir)
}

pub async fn verify_bundle(
    path: &std::path::Path,
    keys: &[PublicKey],
    json: bool,
) -> anyhow::Result<u8> {
    let dir = unpack(path)?;
    let store =
        StoreReader::open(dir.path().to_str().context("temporary path is not UTF-8")?).await?;
    let report = cairn_verify::bundle::verify_unpacked(&store, keys)
        .await
        .with_context(|| format!("{}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "bundle: {} (store {}, tenant {})",
            path.display(),
            report.origin,
            report.tenant
        );
        for f in &report.findings {
            crate::print_finding(f);
        }
        let verdict = match report.exit_code() {
            0 => "INTACT",
            1 => "INTEGRITY FAILURE",
            _ => "INCOMPLETE",
        };
        if report.segments_checked == 0 {
            println!(
                "{verdict}: {} events of tenant {} (redacted), each proven into the log at the checkpoint of size {}",
                report.events_checked, report.tenant, report.checkpoint_size
            );
        } else {
            println!(
                "{verdict}: {} segments, {} events checked, each segment in the log at the checkpoint of size {}",
                report.segments_checked, report.events_checked, report.checkpoint_size
            );
        }
    }
    Ok(report.exit_code() as u8)
}

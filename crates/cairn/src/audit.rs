//! The auditor's toolkit on the command line: `init`, `checkpoint`, `prove`, `verify-proof`,
//! `consistency` (docs/AUDITING.md). The log format is docs/FORMAT.md §11–§12.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_format::PublicKey;
use cairn_format::log::checkpoint::verifier_key;
use cairn_format::log::proof::{consistency_path, verify_consistency};
use cairn_format::log::{Checkpoint, EventProof, Origin};
use cairn_format::merkle::root_recursive;
use cairn_store::{StoreReader, StoreWriter, WriterOptions};
use serde::Serialize;

#[derive(clap::Args)]
pub struct InitArgs {
    /// Store to initialise: a directory or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    store: String,
    /// The store's origin (docs/FORMAT.md §11): a schema-less URL naming it, such as
    /// audit.example.com/vault/prod. Default: cairn.store/<random>. Created once; a store
    /// that already has another origin keeps it and this command fails.
    #[arg(long, value_name = "NAME")]
    origin: Option<String>,
    /// S3 only: COMPLIANCE retention for the origin object, in days (as `cairn seal`).
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
}

#[derive(clap::Args)]
pub struct CheckpointArgs {
    /// Store whose log to extend: a directory or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    store: String,
    /// Secret key that signs the log's checkpoints (from `cairn keygen`; may be the sealing key
    /// or a key of its own). Every checkpoint of a log must be signed by the same key.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Keep running: checkpoint again this often (e.g. 60s, 5m). Default: once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    every: Option<Duration>,
    /// Also write each new checkpoint's note to this file (replaced each time), e.g. for a
    /// witness to fetch.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// S3 only: COMPLIANCE retention for the log's objects, in days (as `cairn seal`).
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
}

#[derive(clap::Args)]
pub struct ProveArgs {
    /// Store holding the event: a directory or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    store: String,
    /// The event's event_id.
    #[arg(long, value_name = "ID")]
    event_id: String,
    /// Trusted public keys: the log's checkpoint key (the store's newest checkpoint must verify).
    #[arg(long = "pubkey", value_name = "FILE", required = true)]
    pubkeys: Vec<PathBuf>,
    /// Only search segments holding this tenant (from their manifests).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// Only search segments whose time bounds contain this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

#[derive(clap::Args)]
pub struct VerifyProofArgs {
    /// A proof from `cairn prove` (`-` for stdin).
    #[arg(value_name = "PROOF")]
    proof: PathBuf,
    /// Trusted public keys: the sealing key and the log's checkpoint key; repeatable.
    #[arg(long = "pubkey", value_name = "FILE", required = true)]
    pubkeys: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct ConsistencyArgs {
    /// Store whose log both checkpoints are of.
    #[arg(long, value_name = "URL")]
    store: String,
    /// The older checkpoint (a signed note file).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The newer checkpoint; default: the store's newest.
    #[arg(long, value_name = "FILE")]
    to: Option<PathBuf>,
    /// Trusted public key of the log's checkpoints; repeatable.
    #[arg(long = "pubkey", value_name = "FILE", required = true)]
    pubkeys: Vec<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 30s, 5m or 1h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?} is not a duration such as 30s, 5m or 1h")),
    };
    if secs == 0 {
        return Err("the interval must be at least 1s".into());
    }
    Ok(Duration::from_secs(secs))
}

fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|p| crate::keyfile::load_public_key(p))
        .collect()
}

pub async fn init(args: InitArgs) -> anyhow::Result<u8> {
    let wanted = args.origin.as_deref().map(Origin::parse).transpose()?;
    let store = StoreWriter::open(
        &args.store,
        &WriterOptions {
            retention_days: args.retention_days,
        },
    )
    .await
    .with_context(|| format!("opening store {}", args.store))?;
    let origin = cairn_sealer::ensure_origin(&store, wanted.as_ref()).await?;
    println!("{origin}");
    Ok(0)
}

pub async fn checkpoint(args: CheckpointArgs) -> anyhow::Result<u8> {
    let key = crate::keyfile::load_signing_key(&args.key)?;
    let store = StoreWriter::open(
        &args.store,
        &WriterOptions {
            retention_days: args.retention_days,
        },
    )
    .await
    .with_context(|| format!("opening store {}", args.store))?;
    let mut announced = false;
    loop {
        let started = Instant::now();
        match cairn_log::checkpoint(&store, &key).await {
            Ok(o) => {
                if !announced {
                    eprintln!(
                        "log {} signed by key {}; Go note verifier key: {}",
                        o.origin,
                        key.key_id(),
                        verifier_key(o.origin.as_str(), &key.public())
                    );
                    announced = true;
                }
                for (name, why) in &o.skipped {
                    tracing::warn!(manifest = %name, "{why}");
                }
                tracing::info!(
                    origin = %o.origin,
                    old_size = o.old_size,
                    size = o.new_size,
                    appended = o.appended(),
                    skipped = o.skipped.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "checkpoint"
                );
                if let Some(out) = &args.out {
                    std::fs::write(out, &o.note)
                        .with_context(|| format!("writing {}", out.display()))?;
                }
                if args.every.is_none() {
                    print!("{}", o.note);
                    return Ok(0);
                }
            }
            Err(e) if args.every.is_some() && e.is_transient() => {
                tracing::warn!(error = %e, "checkpoint failed; retrying at the next interval");
            }
            Err(e) => return Err(e.into()),
        }
        let every = args.every.expect("looping only with --every");
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

pub async fn prove(args: ProveArgs) -> anyhow::Result<u8> {
    let keys = load_keys(&args.pubkeys)?;
    let occurred_at_us = args
        .at
        .as_deref()
        .map(cairn_format::event::parse_rfc3339_micros)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--at: {e}"))?;
    let store = StoreReader::open(&args.store)
        .await
        .with_context(|| format!("opening store {}", args.store))?;
    let started = Instant::now();
    let hints = cairn_verify::prove::Hints {
        tenant: args.tenant,
        occurred_at_us,
    };
    let (proof, stats) =
        cairn_verify::prove::prove_event(&store, &keys, &args.event_id, &hints).await?;
    tracing::info!(
        manifests = stats.manifests_read,
        candidates = stats.candidates,
        segments_decoded = stats.segments_decoded,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "proved"
    );
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(0)
}

pub fn verify_proof(args: &VerifyProofArgs) -> anyhow::Result<u8> {
    let keys = load_keys(&args.pubkeys)?;
    let bytes = if args.proof.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(&args.proof).with_context(|| format!("reading {}", args.proof.display()))?
    };
    let proof = match EventProof::parse(&bytes) {
        Ok(p) => p,
        Err(e) => bail!("{}: {e}", args.proof.display()),
    };
    match proof.verify(&keys) {
        Ok(p) => {
            println!(
                "PROVEN: event {} is offset {} of stream {}, in {} (signed by key {}), entry {} of the log of {} at size {}",
                p.event_id,
                p.offset,
                p.stream,
                p.manifest_name,
                p.key_id,
                p.log_index,
                p.origin,
                p.checkpoint_size
            );
            Ok(0)
        }
        Err(e) => {
            println!("NOT PROVEN: {e}");
            Ok(1)
        }
    }
}

#[derive(Serialize)]
struct ConsistencyProof {
    format: &'static str,
    origin: String,
    old_size: u64,
    old_root: String,
    new_size: u64,
    new_root: String,
    path: Vec<String>,
}

pub async fn consistency(args: ConsistencyArgs) -> anyhow::Result<u8> {
    let keys = load_keys(&args.pubkeys)?;
    let open = |path: &PathBuf| -> anyhow::Result<Checkpoint> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Checkpoint::open(&text, &keys).with_context(|| format!("checkpoint {}", path.display()))
    };
    let old = open(&args.from)?;
    let store = StoreReader::open(&args.store)
        .await
        .with_context(|| format!("opening store {}", args.store))?;
    let new = match &args.to {
        Some(p) => open(p)?,
        None => {
            let (_, note) = cairn_verify::log::newest_checkpoint(&store)
                .await?
                .context("the store has no checkpoint")?;
            Checkpoint::open(&note, &keys).context("the store's newest checkpoint")?
        }
    };
    if old.origin != new.origin {
        println!(
            "INCONSISTENT: the checkpoints are of different logs ({} and {})",
            old.origin, new.origin
        );
        return Ok(1);
    }
    if old.size == 0 || old.size > new.size {
        bail!(
            "--from must be the older checkpoint, of at least one entry (sizes {} and {})",
            old.size,
            new.size
        );
    }
    let entries = cairn_verify::log::read_entries(&store, new.size).await?;
    let leaves = cairn_verify::log::leaf_hashes(&entries);
    let (n1, n2) = (old.size as usize, new.size as usize);
    if root_recursive(&leaves[..n2]) != new.root || root_recursive(&leaves[..n1]) != old.root {
        println!(
            "INCONSISTENT: the store's log does not reproduce both checkpoints' roots (sizes {n1} and {n2}): either the log was altered or the checkpoints are of diverging histories"
        );
        return Ok(1);
    }
    let path = consistency_path(&leaves[..n2], n1).expect("0 < n1 <= n2");
    anyhow::ensure!(
        verify_consistency(old.size, new.size, &old.root, &new.root, &path),
        "internal error: the consistency proof built from the log does not verify"
    );
    let proof = ConsistencyProof {
        format: "cairn.consistency.v1",
        origin: old.origin.to_string(),
        old_size: old.size,
        old_root: hex::encode(old.root),
        new_size: new.size,
        new_root: hex::encode(new.root),
        path: path.iter().map(hex::encode).collect(),
    };
    println!("{}", serde_json::to_string_pretty(&proof)?);
    eprintln!(
        "CONSISTENT: the log of {} at size {} extends size {}",
        old.origin, new.size, old.size
    );
    Ok(0)
}

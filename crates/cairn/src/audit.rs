//! The auditor's toolkit on the command line: `init`, `checkpoint`, `prove`, `verify-proof`,
//! `consistency` (docs/AUDITING.md). The log format is docs/FORMAT.md §11–§12.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_format::PublicKey;
use cairn_format::log::checkpoint::verifier_key;
use cairn_format::log::proof::{consistency_path, verify_consistency};
use std::io::Write as _;

use cairn_format::log::{Checkpoint, EventProof, Origin, ProofVerifier};
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
    /// Also produce each new checkpoint (the note's text, keyed by the origin) to a Kafka
    /// topic, acknowledged (acks=all), for witnesses to keep copies: `host:port[,…]`.
    #[arg(long, value_name = "BROKERS", requires = "publish_topic")]
    publish_brokers: Option<String>,
    /// The topic for --publish-brokers.
    #[arg(long, value_name = "TOPIC", requires = "publish_brokers")]
    publish_topic: Option<String>,
}

#[derive(clap::Args)]
pub struct ProveArgs {
    /// Store holding the event: a directory or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    store: String,
    /// The event's event_id; repeatable. One id prints one pretty JSON proof; several print
    /// one proof per line (JSON lines), in segment order.
    #[arg(long, value_name = "ID", required_unless_present = "event_ids")]
    event_id: Vec<String>,
    /// A file of event ids, one per line (`-` for stdin): proved in one pass over the store.
    #[arg(long, value_name = "FILE")]
    event_ids: Option<PathBuf>,
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
    /// Proof files from `cairn prove` (`-` for stdin); each holds one proof or JSON lines of
    /// many. Checked together: each distinct manifest and checkpoint signature once.
    #[arg(value_name = "PROOF", required = true)]
    proofs: Vec<PathBuf>,
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

pub fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
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
    let publisher = match &args.publish_brokers {
        Some(brokers) => Some(cairn_kafka::AckedProducer::new(
            &cairn_kafka::KafkaConfig {
                brokers: brokers.clone(),
                properties: Default::default(),
            },
            cairn_kafka::RetryPolicy::default(),
        )?),
        None => None,
    };
    // The newest note not yet acknowledged by the publish topic (retried each round).
    let mut unpublished: Option<(String, String)> = None;
    let mut first_round = true;
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
                // Publish each new checkpoint, and on the first round the current one even when
                // nothing was appended, so a witness topic always gets the newest.
                if o.appended() > 0 || first_round {
                    unpublished = Some((o.origin.to_string(), o.note.clone()));
                }
                first_round = false;
                if let (Some(p), Some((origin, note))) = (&publisher, &unpublished) {
                    let topic = args.publish_topic.as_deref().expect("clap requires it");
                    let record = cairn_kafka::Record {
                        topic,
                        key: Some(origin.as_bytes()),
                        payload: note.as_bytes(),
                        headers: vec![("cairn-format", Some(b"c2sp-signed-note".as_slice()))],
                    };
                    match p.send(&record).await {
                        Ok(d) => {
                            tracing::info!(
                                topic,
                                partition = d.partition,
                                offset = d.offset,
                                size = o.new_size,
                                "checkpoint published"
                            );
                            unpublished = None;
                        }
                        Err(e) if args.every.is_some() => {
                            tracing::warn!(topic, error = %e, "publishing the checkpoint failed; retrying at the next interval")
                        }
                        Err(e) => {
                            return Err(anyhow::Error::new(e)
                                .context("the checkpoint is stored, but publishing it failed"));
                        }
                    }
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

fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        Ok(b)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
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
    let mut ids = args.event_id;
    if let Some(f) = &args.event_ids {
        let text = String::from_utf8(read_input(f)?)
            .with_context(|| format!("{} is not UTF-8", f.display()))?;
        ids.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if ids.is_empty() {
        bail!("no event id given (--event-id ID, or --event-ids FILE with one id per line)");
    }
    let store = StoreReader::open(&args.store)
        .await
        .with_context(|| format!("opening store {}", args.store))?;
    let started = Instant::now();
    let hints = cairn_verify::prove::Hints {
        tenant: args.tenant,
        occurred_at_us,
    };
    if ids.len() == 1 && args.event_ids.is_none() {
        let (proof, stats) =
            cairn_verify::prove::prove_event(&store, &keys, &ids[0], &hints).await?;
        tracing::info!(
            manifests = stats.manifests_read,
            candidates = stats.candidates,
            segments_decoded = stats.segments_decoded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "proved"
        );
        println!("{}", serde_json::to_string_pretty(&proof)?);
        return Ok(0);
    }
    let (proofs, unproven, stats) =
        cairn_verify::prove::prove_events(&store, &keys, &ids, &hints).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for p in &proofs {
        serde_json::to_writer(&mut out, p)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    }
    std::io::Write::flush(&mut out)?;
    for u in &unproven {
        match u {
            cairn_verify::prove::Unproven::NotFound { event_id } => {
                eprintln!("not proven: no event {event_id} in the searched segments")
            }
            cairn_verify::prove::Unproven::NotCheckpointed { event_id, manifest } => eprintln!(
                "not proven: event {event_id} is in {manifest}, which is not in the log yet (run cairn checkpoint)"
            ),
        }
    }
    tracing::info!(
        proved = proofs.len(),
        unproven = unproven.len(),
        manifests = stats.manifests_read,
        candidates = stats.candidates,
        segments_decoded = stats.segments_decoded,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "proved"
    );
    Ok(if unproven.is_empty() { 0 } else { 1 })
}

pub fn verify_proof(args: &VerifyProofArgs) -> anyhow::Result<u8> {
    let keys = load_keys(&args.pubkeys)?;
    let mut proofs = Vec::new();
    for path in &args.proofs {
        let bytes = read_input(path)?;
        for (i, item) in serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<serde_json::Value>()
            .enumerate()
        {
            let item =
                item.with_context(|| format!("{}: proof {} is not JSON", path.display(), i + 1))?;
            let proof = EventProof::parse(item.to_string().as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: proof {}: {e}", path.display(), i + 1))?;
            proofs.push(proof);
        }
    }
    if proofs.is_empty() {
        bail!("no proof in the given file(s)");
    }
    let started = Instant::now();
    let mut verifier = ProofVerifier::new(&keys);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    for p in &proofs {
        match verifier.verify(p) {
            Ok(p) => writeln!(
                out,
                "PROVEN: event {} is offset {} of stream {}, in {} (signed by key {}), entry {} of the log of {} at size {}",
                p.event_id,
                p.offset,
                p.stream,
                p.manifest_name,
                p.key_id,
                p.log_index,
                p.origin,
                p.checkpoint_size
            )?,
            Err(e) => {
                failed += 1;
                writeln!(out, "NOT PROVEN: event {}: {e}", p.event.event_id)?
            }
        }
    }
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    if proofs.len() > 1 {
        eprintln!(
            "{} proofs: {} proven, {failed} not proven, in {:.1} ms ({:.0} proofs/s on one core)",
            proofs.len(),
            proofs.len() - failed,
            secs * 1e3,
            proofs.len() as f64 / secs
        );
    }
    Ok(if failed == 0 { 0 } else { 1 })
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

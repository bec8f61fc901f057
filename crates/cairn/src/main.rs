//! The `cairn` command: one binary, one subcommand per capability.
//!
//! This crate wires the library crates to the command line (arguments, files, progress,
//! exit codes). It holds no format, storage or verification logic of its own.

mod alloc;
mod audit;
mod bundle;
mod http;
mod ingest;
mod keyfile;
mod keyset;
mod seal;
mod serve;
mod verify_result;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_format::SigningKey;
use cairn_store::StoreReader;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Tamper-evident audit-log sealing: signed, hash-chained Parquet segments on write-once storage.",
    long_about = "Tamper-evident audit-log sealing.\n\nEvents are sealed into per-stream segments: Parquet files whose events are leaves of an RFC 6962 Merkle tree, each with an Ed25519-signed manifest chained to the previous one, written once to a local write-once directory or to S3 with Object Lock. `cairn verify` rechecks everything offline. The format is specified in docs/FORMAT.md.\n\nStores: a directory path, or s3://bucket[/prefix] with endpoint, region and credentials from the AWS_* environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true for a plain-HTTP local server)."
)]
struct Cli {
    /// Log lines on stderr as human-readable text or as JSON objects (one per line, with the
    /// event's fields; for log shippers and tests). Levels: CAIRN_LOG (e.g. `info`, `debug`,
    /// `cairn_ingest=debug`), default `info`.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CAIRN_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Installs the `tracing` subscriber the library crates log through.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create an Ed25519 signing key pair: DIR/signing.key (secret, mode 0600) and DIR/signing.pub.
    Keygen {
        /// Directory to write the key pair into (created if missing; existing keys are never overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Seal a JSONL file of audit events into a store.
    ///
    /// Each line is one event (schemas/audit_event.avsc; JSON field names as in the schema,
    /// occurred_at as RFC 3339). The line number is the event's offset in the stream
    /// (SOURCE_ID, partition). Lines that fail validation are not sealed: they are written to
    /// the rejects file with the reason and listed as rejected in their segment's manifest.
    /// Sealing resumes after the newest manifest already in the store, so re-running on the
    /// same (or a grown) file seals only new lines.
    Seal(seal::SealArgs),
    /// Consume Kafka topics and seal every partition as a stream, exactly once.
    ///
    /// Positions come from the newest manifest of each partition in the store (not the
    /// group's committed offsets); offsets are committed only after a segment is stored.
    /// Undecodable or invalid messages go to the dead-letter topic. Runs until SIGTERM or
    /// SIGINT, then seals what it holds and exits 0 (2 if that last seal fails: nothing
    /// unsealed was committed, so the next start reads those messages again).
    Ingest(ingest::IngestArgs),
    /// Serve policy-gated SQL over the verified segments of a store (docs/QUERY.md).
    ///
    /// Every request is authenticated (an API key in X-Api-Key), planned read-only to learn
    /// which tables and columns it reads, decided once by the Rego policy (docs/POLICY.md),
    /// and only then run — over views that apply the policy's row filters and masks beneath
    /// the SQL. Only segments whose manifest a --pubkey signed and whose file hashes as signed
    /// are served; the store is re-listed every refresh_secs. Runs until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Check a signed query result offline with the query service's public key.
    ///
    /// RESPONSE is the JSON body of a `POST /v1/query` made with "sign": true. Checks the
    /// Ed25519 signature over the statement (docs/FORMAT.md §10), and that the response's
    /// decision id, rows (their SHA-256 as serialised) and segments are the signed ones.
    /// Exit status: 0 intact, 1 not as signed, 2 usage error.
    VerifyResult(verify_result::VerifyResultArgs),
    /// Verify every segment, signature, chain and offset range in a store.
    ///
    /// Lists the whole store (a symbolic link or special file in a local vault is an integrity
    /// failure and is never followed) and checks it as docs/FORMAT.md §8 specifies; each
    /// finding names one object and one class. Without signed checkpoints an intact verdict
    /// cannot rule out the deletion of whole streams or of a stream's newest segments, or a
    /// stream copied in from another vault signed by a trusted key; every report says so.
    ///
    /// Exit status: 0 intact, 1 integrity failure found, 2 usage error (a malformed or weak
    /// --pubkey, a missing store, a store holding no manifest) or incomplete (an object could
    /// not be read).
    /// Create the store's origin (its identity, docs/FORMAT.md §11) with a chosen name.
    ///
    /// Optional: the first seal, ingest or checkpoint creates a random one. Prints the origin.
    Init(audit::InitArgs),
    /// Append the store's new segments to its transparency log and sign a checkpoint.
    ///
    /// The log (docs/FORMAT.md §12) is C2SP tlog-tiles in the store; the checkpoint is a C2SP
    /// signed note, printed on stdout. Give it to auditors and witnesses: `cairn verify
    /// --checkpoint` then proves nothing sealed before it was deleted, truncated or replaced.
    /// Refuses to sign when the log does not reproduce its newest checkpoint, when that
    /// checkpoint is another key's, or when another checkpointer is appending at the same time.
    Checkpoint(audit::CheckpointArgs),
    /// Print the proof of one event: event → segment root → signed manifest → log → checkpoint.
    ///
    /// Searches only segments the manifests (and --tenant/--at) allow, skips those whose
    /// Parquet bloom filter rules the event out, and decodes only the one that holds it. The
    /// proof (JSON, docs/FORMAT.md §12.4) is checked offline with `cairn verify-proof`.
    ///
    /// Exit status: 0 proven; 1 when some of several ids (--event-ids) could not be proved
    /// (each is named on stderr); 2 for a usage error, or when a single --event-id is not found
    /// or not yet checkpointed.
    Prove(audit::ProveArgs),
    /// Check an event proof offline, with the public keys only (no store).
    ///
    /// Exit status: 0 proven, 1 not proven (the reason is printed), 2 usage error.
    VerifyProof(audit::VerifyProofArgs),
    /// Prove that the log only grew between two checkpoints (RFC 9162 consistency proof).
    ///
    /// Prints the proof as JSON (docs/FORMAT.md §12.4). Exit status: 0 consistent, 1 not
    /// (different logs, or the store's log does not reproduce both), 2 usage error.
    Consistency(audit::ConsistencyArgs),
    /// Write an audit bundle: one tenant's segments for a time range, with their manifests,
    /// the checkpoint, each manifest's inclusion proof in the log, the keys and (S3) the Object
    /// Lock evidence, in one tar file that `cairn verify --bundle` checks with no store access.
    Bundle(bundle::BundleArgs),
    Verify {
        /// Store to verify: a directory or s3://bucket[/prefix].
        #[arg(long, value_name = "URL", required_unless_present = "bundle")]
        store: Option<String>,
        /// Verify an audit bundle (from `cairn bundle`) instead of a store: every segment in it,
        /// each manifest's inclusion in the log at the bundle's checkpoint, and the checkpoint's
        /// signature, under the --pubkey keys (never keys shipped in the bundle).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["store", "checkpoint", "deny", "concurrency"])]
        bundle: Option<PathBuf>,
        /// Trusted public key file (from `cairn keygen`); repeat for several keys (rotation).
        #[arg(
            long = "pubkey",
            value_name = "FILE",
            required_unless_present = "keyset"
        )]
        pubkeys: Vec<PathBuf>,
        /// A key set (TOML, docs/AUDITING.md): trusted public keys with validity windows and
        /// revocation times. A manifest signed outside its key's window is `outside_key_window`.
        #[arg(long, value_name = "FILE")]
        keyset: Option<PathBuf>,
        /// Print the report as JSON on stdout instead of a human summary.
        #[arg(long)]
        json: bool,
        /// Segments verified concurrently (default: 2 × CPUs).
        #[arg(long, value_name = "N")]
        concurrency: Option<usize>,
        /// Report this warning class as an error (exit 1), e.g. `--deny lost_offsets` where
        /// records deleted at the source before they were sealed are not acceptable; repeatable.
        /// Warning classes: lost_offsets, orphan_file, unexpected_object, not_checkpointed.
        #[arg(long, value_name = "CLASS", value_parser = parse_warning_class)]
        deny: Vec<cairn_verify::FindingKind>,
        /// A checkpoint of this store obtained out of band (from a witness, or kept by the
        /// auditor): every segment in the log up to it must be present and unchanged, and the
        /// store's log must extend it. Without it, the store's own newest checkpoint is used.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if !matches!(cli.command, Command::Ingest(_) | Command::Serve(_)) {
        alloc::tune_for_batch();
    }
    let result = match cli.command {
        Command::Ingest(args) => ingest::run(args, &rt),
        command => rt.block_on(run(command)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(h) = hint(&e) {
                eprintln!("hint: {h}");
            }
            ExitCode::from(2)
        }
    }
}

fn parse_warning_class(s: &str) -> Result<cairn_verify::FindingKind, String> {
    match cairn_verify::FindingKind::parse(s) {
        Some(k) if k.is_warning() => Ok(k),
        Some(_) => Err(format!("{s} is already an error")),
        None => Err(format!(
            "{s:?} is not a finding class (warning classes: lost_offsets, orphan_file, unexpected_object, not_checkpointed)"
        )),
    }
}

/// What the user can do about an error, in this command's terms (library messages name no
/// flags or commands).
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    use cairn_sealer::SealError;
    use cairn_store::StoreError;
    e.chain().find_map(|cause| {
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return match s {
                StoreError::NoRetention { .. } => Some(
                    "or pass --retention-days N to put each object under COMPLIANCE retention for N days",
                ),
                StoreError::Conflict { .. } | StoreError::NotRegular { .. } => Some(
                    "run `cairn verify --store … --pubkey …` to see what is in the store",
                ),
                _ => None,
            };
        }
                        use cairn_ingest::{ConfigError, IngestError};
        let config = cause.downcast_ref::<ConfigError>().or(match cause.downcast_ref() {
            Some(IngestError::Config(c)) => Some(c),
            _ => None,
        });
        if let Some(c) = config {
            return match c {
                ConfigError::NoTopics => Some("pass --topics a,b (or set topics in the config file)"),
                ConfigError::NoDeadLetterTopic => {
                    Some("pass --dlq-topic NAME (or set dlq_topic in the config file)")
                }
                _ => None,
            };
        }
        match cause.downcast_ref::<SealError>() {
            Some(SealError::ChainHead { .. }) => Some(
                "run `cairn verify --store … --pubkey …` on this store; a stream is extended only with the key that signed its newest manifest",
            ),
            _ => None,
        }
    })
}

async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Keygen { out } => {
            let key = SigningKey::generate()?;
            keyfile::write_keypair(&out, &key)?;
            println!(
                "wrote {} (secret, 0600) and {} (key id {})",
                out.join("signing.key").display(),
                out.join("signing.pub").display(),
                key.key_id()
            );
            Ok(0)
        }
        Command::Seal(args) => seal::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::VerifyResult(args) => verify_result::run(&args),
        Command::Init(args) => audit::init(args).await,
        Command::Checkpoint(args) => audit::checkpoint(args).await,
        Command::Prove(args) => audit::prove(args).await,
        Command::VerifyProof(args) => audit::verify_proof(&args),
        Command::Consistency(args) => audit::consistency(args).await,
        Command::Bundle(args) => bundle::bundle(args).await,
        Command::Ingest(_) => unreachable!("ingest runs outside the async runtime"),
        Command::Verify {
            store,
            pubkeys,
            json,
            concurrency,
            deny,
            checkpoint,
            bundle,
            keyset,
        } => {
            let mut keys = pubkeys
                .iter()
                .map(|p| keyfile::load_public_key(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut windows = Vec::new();
            if let Some(k) = &keyset {
                let (more, w) = keyset::load(k)?;
                keys.extend(more);
                windows = w;
            }
            match (bundle, store) {
                (Some(b), _) => bundle::verify_bundle(&b, &keys, json).await,
                (None, Some(store)) => {
                    let opts = VerifyArgs {
                        json,
                        concurrency,
                        deny,
                        checkpoint,
                        windows,
                    };
                    verify(&store, keys, opts).await
                }
                (None, None) => anyhow::bail!("--store URL or --bundle FILE is required"),
            }
        }
    }
}

struct VerifyArgs {
    json: bool,
    concurrency: Option<usize>,
    deny: Vec<cairn_verify::FindingKind>,
    checkpoint: Option<PathBuf>,
    windows: Vec<cairn_verify::KeyWindow>,
}

async fn verify(
    url: &str,
    keys: Vec<cairn_format::PublicKey>,
    args: VerifyArgs,
) -> anyhow::Result<u8> {
    let VerifyArgs {
        json,
        concurrency,
        deny,
        checkpoint,
        windows,
    } = args;
    let checkpoint = match checkpoint {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("reading checkpoint {}", p.display()))?;
            Some(
                cairn_format::log::Checkpoint::open(&text, &keys)
                    .with_context(|| format!("checkpoint {}", p.display()))?,
            )
        }
    };
    let store = StoreReader::open(url)
        .await
        .with_context(|| format!("opening store {url}"))?;
    let tty = std::io::stderr().is_terminal() && !json;
    let progress = |done: u64, total: u64| {
        eprint!("\rverifying segment {done}/{total}");
    };
    let mut vopts = cairn_verify::VerifyOptions {
        deny,
        checkpoint,
        key_windows: windows,
        ..Default::default()
    };
    if let Some(n) = concurrency {
        vopts.concurrency = n;
    }
    if tty {
        vopts.progress = Some(&progress);
    }
    let report = match cairn_verify::verify_store(&store, &keys, &vopts).await {
        Ok(r) => r,
        Err(e @ cairn_verify::VerifyError::Empty { .. }) => {
            return Err(anyhow::Error::new(e).context("is --store the right location?"));
        }
        Err(e) => return Err(e.into()),
    };
    if tty {
        eprintln!();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(report.exit_code() as u8)
}

/// One finding of a human report: `  SEVERITY class object — message`.
fn print_finding(f: &cairn_verify::Finding) {
    println!(
        "  {} {} {} — {}",
        f.severity.as_str().to_uppercase(),
        f.kind,
        f.object,
        f.message
    );
}

fn print_report(r: &cairn_verify::Report) {
    println!("store: {}", r.store);
    for s in &r.streams {
        let range = match (s.first_offset, s.last_offset) {
            (Some(a), Some(b)) => format!("offsets {a}..={b}"),
            _ => "no offsets".into(),
        };
        println!(
            "  stream {}: {} segments, {range}, {} events, {} rejected, {} absent, {} lost",
            s.stream, s.segments, s.events, s.rejected_offsets, s.absent_offsets, s.lost_offsets
        );
    }
    for f in &r.findings {
        print_finding(f);
    }
    let verdict = match r.exit_code() {
        0 => "INTACT",
        1 => "INTEGRITY FAILURE",
        _ => "INCOMPLETE (some objects could not be read)",
    };
    let errors = r.errors();
    let warnings = r.findings.len() - errors;
    println!(
        "{verdict}: {} segments, {} events, {} Parquet bytes checked; {errors} errors, {warnings} warnings",
        r.segments_checked, r.events_checked, r.parquet_bytes_checked
    );
    if let Some(o) = &r.origin {
        println!("store origin: {o}");
    }
    match &r.checkpoint {
        Some(c) => println!(
            "checked against the {} checkpoint of {} at size {} (root {})",
            if c.source == "given" {
                "given"
            } else {
                "store's newest"
            },
            c.origin,
            c.size,
            c.root
        ),
        None => println!(
            "no checkpoint checked: the store has none (run cairn checkpoint), or none signed by a key given"
        ),
    }
    if !r.limitations.is_empty() {
        println!("not established by this verdict (docs/FORMAT.md §8.5):");
        for l in &r.limitations {
            println!("  - {l}");
        }
    }
}

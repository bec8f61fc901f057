//! The cairn binary under test, and what the tests do with it: keys, seal, verify, stores.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `cairn` binary of this build. The integration tests belong to the `cairn` package, so
/// cargo builds it (fresh) before running them, beside the test executables:
/// `target/<profile>/cairn` next to `target/<profile>/deps/<test>`. `CAIRN_BIN` overrides.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = std::env::var_os("CAIRN_BIN").map(PathBuf::from).unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("the test executable's path");
            exe.parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps/<test>")
                .join("cairn")
        });
        assert!(
            path.is_file(),
            "the cairn binary is not at {} (run the tests with `cargo test`, which builds it, or set CAIRN_BIN)",
            path.display()
        );
        path
    })
}

pub fn cairn() -> Command {
    Command::new(bin())
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file in `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    repo().join("tests/data").join(name)
}

/// Runs `cairn args…`, returning the output; panics with stderr if the exit code differs.
pub fn run_expect(args: &[&str], code: i32) -> Output {
    let out = cairn().args(args).output().expect("run cairn");
    assert_eq!(
        out.status.code(),
        Some(code),
        "cairn {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Keys {
    pub dir: PathBuf,
    pub key: String,
    pub public: String,
}

pub fn keygen(dir: &Path) -> Keys {
    let kdir = dir.join("keys");
    run_expect(&["keygen", "--out", kdir.to_str().unwrap()], 0);
    Keys {
        key: kdir.join("signing.key").to_str().unwrap().into(),
        public: kdir.join("signing.pub").to_str().unwrap().into(),
        dir: kdir,
    }
}

pub fn seal(input: &Path, store: &str, key: &str, segment_events: u64, rejects: &Path) -> Output {
    run_expect(
        &[
            "seal",
            "--input",
            input.to_str().unwrap(),
            "--source-id",
            "billing",
            "--store",
            store,
            "--key",
            key,
            "--segment-events",
            &segment_events.to_string(),
            "--rejects",
            rejects.to_str().unwrap(),
        ],
        0,
    )
}

/// `cairn verify --json`: (exit code, report).
pub fn verify(store: &str, pubkeys: &[&str]) -> (i32, serde_json::Value) {
    verify_env(store, pubkeys, &[])
}

/// [`verify`] with extra environment (an S3 endpoint: [`S3Server::env`]).
pub fn verify_env(
    store: &str,
    pubkeys: &[&str],
    env: &[(&str, String)],
) -> (i32, serde_json::Value) {
    verify_full(store, pubkeys, &[], env)
}

/// [`verify`] with extra arguments (`--checkpoint FILE`).
pub fn verify_args(store: &str, pubkeys: &[&str], extra: &[&str]) -> (i32, serde_json::Value) {
    verify_full(store, pubkeys, extra, &[])
}

fn verify_full(
    store: &str,
    pubkeys: &[&str],
    extra: &[&str],
    env: &[(&str, String)],
) -> (i32, serde_json::Value) {
    let mut cmd = cairn();
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.args(["verify", "--store", store, "--json"]);
    for k in pubkeys {
        cmd.args(["--pubkey", k]);
    }
    cmd.args(extra);
    let out = cmd.output().expect("run cairn verify");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON report ({e})\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

/// The (kind, object) pairs of a report's findings.
pub fn findings(report: &serde_json::Value) -> BTreeSet<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn kinds(report: &serde_json::Value) -> BTreeSet<String> {
    findings(report).into_iter().map(|(k, _)| k).collect()
}

/// Sorted object names (relative to the store root) under `root`.
pub fn objects(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

pub fn make_writable(p: &Path) {
    let mut perms = std::fs::metadata(p).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(p, perms).unwrap();
}

pub fn valid_lines(path: &Path) -> (u64, u64) {
    // (valid, malformed) as produced by scripts/gen_events.py --malformed-every 7
    let text = std::fs::read_to_string(path).unwrap();
    let total = text.lines().count() as u64;
    let bad = total / 7;
    (total - bad, bad)
}

/// The rows of a sealed Parquet file written again as another Parquet writer would
/// (uncompressed, another `created_by`): the same columns and rows, other bytes.
pub fn reencode(file: &[u8]) -> Vec<u8> {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.to_vec()))
        .unwrap()
        .build()
        .unwrap();
    let props = WriterProperties::builder()
        .set_created_by("another writer".to_string())
        .build();
    let mut out = Vec::new();
    let mut w =
        ArrowWriter::try_new(&mut out, cairn_format::segment::arrow_schema(), Some(props)).unwrap();
    for batch in reader {
        w.write(&batch.unwrap()).unwrap();
    }
    w.close().unwrap();
    out
}

/// Replaces the body of the manifest at `path` by `edit(body)` and signs it again with the
/// secret key file `key` (a trusted signer producing that body).
pub fn resign(path: &Path, key: &str, edit: impl FnOnce(&str) -> String) {
    use base64::Engine;
    let key = cairn_format::SigningKey::parse(&std::fs::read_to_string(key).unwrap(), key).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let body = edit(text.lines().next().unwrap());
    let sig = key.sign(&cairn_format::manifest::signing_input(body.as_bytes()));
    make_writable(path);
    std::fs::write(
        path,
        format!(
            "{body}\ned25519 {} {}\n",
            key.key_id(),
            base64::engine::general_purpose::STANDARD.encode(sig)
        ),
    )
    .unwrap();
}

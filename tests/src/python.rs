//! The Python peers written from docs/FORMAT.md alone: the independent verifier.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::cli::findings;

/// tests/independent_verifier.py (written from docs/FORMAT.md alone) on a local store:
/// (exit code, its (class, object) findings, its output).
pub fn independent_verify(
    store: &Path,
    pubkeys: &[&str],
) -> (i32, BTreeSet<(String, String)>, String) {
    independent_verify_with(store, pubkeys, &[])
}

/// [`independent_verify`] with extra arguments (`--checkpoint FILE`).
pub fn independent_verify_with(
    store: &Path,
    pubkeys: &[&str],
    extra: &[&str],
) -> (i32, BTreeSet<(String, String)>, String) {
    let out = Command::new("python3")
        .arg(crate::cli::repo().join("tests/independent_verifier.py"))
        .arg(store)
        .args(pubkeys)
        .args(extra)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let found = stdout
        .lines()
        .filter_map(|l| {
            let rest = l
                .strip_prefix("FAIL ")
                .or_else(|| l.strip_prefix("WARN "))
                .or_else(|| l.strip_prefix("INCOMPLETE "))?;
            let mut parts = rest.splitn(3, ' ');
            let class = parts.next()?.to_string();
            let object = parts.next()?.trim_end_matches(':').to_string();
            Some((class, object))
        })
        .collect();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), found, all)
}

/// `cairn verify` and the independent verifier reach the same verdict on `store`: the same
/// exit code and the same (class, object) findings. Returns cairn's report.
pub fn verify_both(store: &Path, pubkeys: &[&str]) -> (i32, serde_json::Value) {
    verify_both_with(store, pubkeys, &[])
}

/// [`verify_both`] with extra arguments for both (`--checkpoint FILE`).
pub fn verify_both_with(
    store: &Path,
    pubkeys: &[&str],
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let (code, report) = crate::cli::verify_args(store.to_str().unwrap(), pubkeys, extra);
    let (icode, ifound, iout) = independent_verify_with(store, pubkeys, extra);
    assert_eq!(
        (icode, &ifound),
        (code, &findings(&report)),
        "the independent verifier disagrees with cairn verify\ncairn: {report:#}\nindependent:\n{iout}"
    );
    (code, report)
}

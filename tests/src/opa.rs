//! The real OPA binary (scripts/ensure-opa.sh builds it from the Go module proxy).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `$CAIRN_OPA`, else where scripts/ensure-opa.sh installs it. Panics (the test fails, it
/// does not skip) when it is missing.
pub fn opa() -> PathBuf {
    let path = std::env::var_os("CAIRN_OPA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/cairn/tools/opa-v1.22.3/bin/opa")
        });
    assert!(
        path.is_file(),
        "OPA not found at {} (scripts/test.sh installs it with scripts/ensure-opa.sh)",
        path.display()
    );
    path
}

/// Runs `opa` with `args` in `dir`; returns stdout, panics with OPA's output on failure.
pub fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(opa())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running opa");
    assert!(
        out.status.success(),
        "opa {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `opa build -t wasm` of the policies in `policies` (tests and case data left out) into
/// `out_dir/bundle.tar.gz`, as docs/POLICY.md tells operators to build it.
pub fn build_wasm(policies: &Path, entrypoint: &str, out_dir: &Path) -> PathBuf {
    let bundle = out_dir.join("bundle.tar.gz");
    run(
        policies,
        &[
            "build",
            "-t",
            "wasm",
            "-e",
            entrypoint,
            "--ignore",
            "*_test.rego",
            "--ignore",
            "*.json",
            "-o",
            bundle.to_str().unwrap(),
            ".",
        ],
    );
    bundle
}

//! The independent Go verifier of the log (tests/interop: golang.org/x/mod's sumdb `note` and
//! `tlog`), built by scripts/ensure-go-interop.sh.

use std::path::PathBuf;
use std::process::{Command, Output};

/// `$CAIRN_GO_INTEROP`, else built now with scripts/ensure-go-interop.sh. Panics (the test
/// fails, it does not skip) when it cannot be had.
pub fn go_interop() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_GO_INTEROP") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "CAIRN_GO_INTEROP={} is not a file",
            p.display()
        );
        return p;
    }
    let out = Command::new(crate::cli::repo().join("scripts/ensure-go-interop.sh"))
        .output()
        .expect("running scripts/ensure-go-interop.sh");
    assert!(
        out.status.success(),
        "scripts/ensure-go-interop.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs the Go verifier with `args`.
pub fn run_go_interop(args: &[&str]) -> Output {
    Command::new(go_interop())
        .args(args)
        .output()
        .expect("running cairn-interop")
}

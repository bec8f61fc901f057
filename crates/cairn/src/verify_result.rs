//! `cairn verify-result`: checks a signed query result offline (docs/FORMAT.md §10) with the
//! query service's public key: the signature over the statement, and that the response's
//! decision id, rows and segments are the ones the statement names.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_format::{Digest, PublicKey, ResultStatement};
use serde_json::Value;

#[derive(clap::Args)]
pub struct VerifyResultArgs {
    /// The JSON response of a query made with `"sign": true` (`-` reads stdin).
    #[arg(value_name = "RESPONSE")]
    response: PathBuf,
    /// The query service's public key (from `cairn keygen`); repeat for several.
    #[arg(long = "pubkey", value_name = "FILE", required = true)]
    pubkeys: Vec<PathBuf>,
}

/// Exit status: 0 the result is as signed, 1 it is not, 2 usage error (unreadable file, not
/// a signed response, malformed key).
pub fn run(args: &VerifyResultArgs) -> anyhow::Result<u8> {
    let keys = args
        .pubkeys
        .iter()
        .map(|p| crate::keyfile::load_public_key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = read(&args.response)?;
    let response: Value = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not JSON", args.response.display()))?;
    let Some(sig) = response.get("signature") else {
        bail!(
            "{}: no `signature`: ask for one with \"sign\": true in the query",
            args.response.display()
        );
    };
    let field = |name: &str| {
        sig.get(name)
            .and_then(Value::as_str)
            .with_context(|| format!("signature.{name} is missing or not a string"))
    };
    let statement_text = field("statement")?;
    let key_id = field("key_id")?;
    let sig_hex = field("ed25519")?;
    let findings = check(&response, statement_text, key_id, sig_hex, &keys)?;
    let statement = ResultStatement::parse(statement_text.as_bytes())?;
    println!("decision_id: {}", statement.decision_id);
    println!("signed_at:   {}", statement.signed_at);
    println!("sql:         {}", statement.sql);
    println!("rows:        {}", statement.row_count);
    println!("segments:    {}", statement.segments.len());
    for s in &statement.segments {
        println!(
            "  {} {} manifest_sha256={} merkle_root={}",
            s.table, s.manifest, s.manifest_sha256, s.merkle_root
        );
    }
    if findings.is_empty() {
        println!("verdict: SIGNED RESULT INTACT (key {key_id})");
        println!(
            "This says what the service returned and which sealed segments it read; check those \
             segments with `cairn verify` against the store."
        );
        Ok(0)
    } else {
        for f in &findings {
            println!("FAIL: {f}");
        }
        println!("verdict: NOT AS SIGNED ({} findings)", findings.len());
        Ok(1)
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Every way the response differs from what was signed (empty: intact).
fn check(
    response: &Value,
    statement_text: &str,
    key_id: &str,
    sig_hex: &str,
    keys: &[PublicKey],
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let Some(key) = keys.iter().find(|k| k.key_id().to_string() == key_id) else {
        out.push(format!(
            "signed by key {key_id}, which no --pubkey is (ids: {})",
            keys.iter()
                .map(|k| k.key_id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(out);
    };
    let mut sig = [0u8; 64];
    if hex::decode_to_slice(sig_hex, &mut sig).is_err()
        || !key.verify(statement_text.as_bytes(), &sig)
    {
        out.push("the signature does not verify over the statement".into());
        return Ok(out);
    }
    let statement = match ResultStatement::parse(statement_text.as_bytes()) {
        Ok(s) => s,
        Err(e) => {
            out.push(format!("the statement is malformed: {e}"));
            return Ok(out);
        }
    };
    if response.get("decision_id").and_then(Value::as_str) != Some(&statement.decision_id) {
        out.push(format!(
            "decision_id: the response says {}, the statement {}",
            response.get("decision_id").unwrap_or(&Value::Null),
            statement.decision_id
        ));
    }
    match response.get("rows") {
        Some(rows) => {
            let bytes = serde_json::to_vec(rows)?;
            let got = Digest::of(&bytes);
            if got != statement.rows_sha256 {
                out.push(format!(
                    "rows: SHA-256 {got}, signed {} (rows were altered, added or removed)",
                    statement.rows_sha256
                ));
            }
            let n = rows.as_array().map_or(0, Vec::len) as u64;
            if n != statement.row_count {
                out.push(format!(
                    "rows: {n} in the response, {} signed",
                    statement.row_count
                ));
            }
        }
        None => out.push("the response has no rows".into()),
    }
    let listed: Vec<(String, String, String, String)> = response
        .get("segments")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    let f = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    (
                        f("table"),
                        f("manifest"),
                        f("manifest_sha256"),
                        f("merkle_root"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let signed: Vec<(String, String, String, String)> = statement
        .segments
        .iter()
        .map(|s| {
            (
                s.table.clone(),
                s.manifest.clone(),
                s.manifest_sha256.clone(),
                s.merkle_root.clone(),
            )
        })
        .collect();
    if listed != signed {
        out.push(format!(
            "segments: the response lists {}, the statement signs {} (or they differ)",
            listed.len(),
            signed.len()
        ));
    }
    Ok(out)
}

//! Signed query results (docs/FORMAT.md §10): the statement the query service signs when a
//! caller asks for `"sign": true`, and its parsing for `cairn verify-result`.
//!
//! The statement is UTF-8 text, one field per line, each line ending in `\n`:
//!
//! ```text
//! cairn.result.v1
//! decision_id: 0193…
//! signed_at: 2026-11-26T10:00:00.000000Z
//! sql: "SELECT …"                      (a JSON string: one line, escapes as JSON)
//! rows_sha256: <64 hex>                (SHA-256 of the rows as returned, §10)
//! row_count: 42
//! segment: <table> <manifest object> <manifest sha256> <merkle root>   (0 or more)
//! ```

use crate::digest::Digest;

/// First line of every result statement.
pub const RESULT_V1: &str = "cairn.result.v1";

/// One segment a result was computed from, as an auditor cites it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultSegment {
    pub table: String,
    pub manifest: String,
    pub manifest_sha256: String,
    pub merkle_root: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultStatement {
    pub decision_id: String,
    pub signed_at: String,
    pub sql: String,
    pub rows_sha256: Digest,
    pub row_count: u64,
    pub segments: Vec<ResultSegment>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("result statement line {line}: {message}")]
pub struct ResultError {
    pub line: usize,
    pub message: String,
}

fn token_ok(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl ResultStatement {
    /// The exact bytes that are signed. `None` when a field cannot be written unambiguously
    /// (a table or object name with whitespace, a decision id with a line break).
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        if !token_ok(&self.decision_id) || !token_ok(&self.signed_at) {
            return None;
        }
        let sql = serde_json::to_string(&self.sql).ok()?;
        let mut out = format!(
            "{RESULT_V1}\ndecision_id: {}\nsigned_at: {}\nsql: {sql}\nrows_sha256: {}\nrow_count: {}\n",
            self.decision_id,
            self.signed_at,
            self.rows_sha256.as_str(),
            self.row_count
        );
        for s in &self.segments {
            for t in [&s.table, &s.manifest, &s.manifest_sha256, &s.merkle_root] {
                if !token_ok(t) {
                    return None;
                }
            }
            out.push_str(&format!(
                "segment: {} {} {} {}\n",
                s.table, s.manifest, s.manifest_sha256, s.merkle_root
            ));
        }
        Some(out.into_bytes())
    }

    /// Parses exactly what [`ResultStatement::to_bytes`] writes; anything else is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, ResultError> {
        let err = |line: usize, message: String| ResultError { line, message };
        let text = std::str::from_utf8(bytes).map_err(|_| err(0, "not UTF-8".into()))?;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| err(0, "does not end with a newline".into()))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.first() != Some(&RESULT_V1) {
            return Err(err(1, format!("the first line must be {RESULT_V1}")));
        }
        let field = |n: usize, name: &str| -> Result<&str, ResultError> {
            lines
                .get(n)
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .ok_or_else(|| err(n + 1, format!("expected `{name}: …`")))
        };
        let decision_id = field(1, "decision_id")?.to_string();
        let signed_at = field(2, "signed_at")?.to_string();
        let sql: String = serde_json::from_str(field(3, "sql")?)
            .map_err(|e| err(4, format!("sql is not a JSON string: {e}")))?;
        let rows_sha256 = Digest::from_text(field(4, "rows_sha256")?);
        if !rows_sha256.is_canonical() {
            return Err(err(5, "rows_sha256 is not 64 lowercase hex digits".into()));
        }
        let row_count = field(5, "row_count")?
            .parse()
            .map_err(|_| err(6, "row_count is not a number".into()))?;
        let mut segments = Vec::new();
        for n in 6..lines.len() {
            let parts: Vec<&str> = field(n, "segment")?.split(' ').collect();
            let [table, manifest, manifest_sha256, merkle_root] = parts[..] else {
                return Err(err(n + 1, "a segment line has four fields".into()));
            };
            segments.push(ResultSegment {
                table: table.into(),
                manifest: manifest.into(),
                manifest_sha256: manifest_sha256.into(),
                merkle_root: merkle_root.into(),
            });
        }
        let statement = ResultStatement {
            decision_id,
            signed_at,
            sql,
            rows_sha256,
            row_count,
            segments,
        };
        // Canonical form only: what is signed is exactly what is read.
        if statement.to_bytes().as_deref() != Some(bytes) {
            return Err(err(0, "not in canonical form".into()));
        }
        Ok(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_round_trip_and_only_canonical_text_parses() {
        let s = ResultStatement {
            decision_id: "0193a0a0-0000-7000-8000-000000000001".into(),
            signed_at: "2026-11-26T10:00:00.000000Z".into(),
            sql: "SELECT 'a\nb' FROM events -- \"x\"".into(),
            rows_sha256: Digest::of(b"[]"),
            row_count: 0,
            segments: vec![ResultSegment {
                table: "events".into(),
                manifest: "billing/0/manifest/00000000000000000001.json".into(),
                manifest_sha256: "ab".repeat(32),
                merkle_root: "cd".repeat(32),
            }],
        };
        let bytes = s.to_bytes().unwrap();
        assert_eq!(ResultStatement::parse(&bytes).unwrap(), s);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().count(), 7);
        for bad in [
            text.replace("row_count: 0", "row_count: 00"),
            text.replace("decision_id: ", "decision_id:  "),
            text.replace("cairn.result.v1", "cairn.result.v2"),
            text.trim_end().to_string(),
            format!("{text}extra\n"),
        ] {
            assert!(ResultStatement::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let mut spaced = s.clone();
        spaced.segments[0].table = "my table".into();
        assert_eq!(spaced.to_bytes(), None);
    }
}

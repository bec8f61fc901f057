use super::*;

pub fn sample() -> Manifest {
    Manifest {
        format: crate::FORMAT_VERSION.into(),
        store: Some("example.com/vault".into()),
        stream: StreamRef {
            id: "billing".into(),
            partition: 0,
        },
        seq: 0,
        first_offset: 1,
        last_offset: 3,
        event_count: 2,
        rejected: vec![OffsetRange::one(2)],
        absent: vec![],
        lost: Some(vec![]),
        min_occurred_at: Some("2026-11-26T00:00:00.000000Z".into()),
        max_occurred_at: Some("2026-11-26T00:00:01.000000Z".into()),
        tenants: vec!["acme".into()],
        merkle_root: Digest::from_bytes(&[1u8; 32]),
        parquet: ParquetRef {
            object: "v1/streams/billing/0/00000000000000000001-00000000000000000003.parquet".into(),
            sha256: Digest::from_bytes(&[2u8; 32]),
            size: 10,
            version_id: None,
        },
        prev_manifest_sha256: Digest::genesis(),
        schema_sha256: crate::schema_fingerprint(),
        key_id: String::new(),
        sealed_at: "2026-11-26T00:00:00.000000Z".into(),
    }
}

fn key() -> SigningKey {
    SigningKey::from_seed([3; 32])
}

/// The manifest object text of `sample()` with its body edited by `edit` and re-signed.
fn resigned(edit: impl Fn(&str) -> String) -> Vec<u8> {
    let signed = SignedManifest::sign(sample(), &key());
    let body = edit(std::str::from_utf8(&signed.body).unwrap());
    let sig = key().sign(&signing_input(body.as_bytes()));
    format!(
        "{body}\ned25519 {} {}\n",
        key().key_id(),
        base64::engine::general_purpose::STANDARD.encode(sig)
    )
    .into_bytes()
}

#[test]
fn sign_serialise_parse_verify() {
    let sm = SignedManifest::sign(sample(), &key());
    let bytes = sm.to_bytes();
    let parsed = SignedManifest::parse(&bytes).unwrap();
    assert_eq!(parsed, sm);
    assert_eq!(
        parsed.check_signature(&[key().public()]),
        SignatureCheck::Valid
    );
    assert!(parsed.manifest.rule_violations().is_empty());
    let other = SigningKey::from_seed([4; 32]).public();
    assert_eq!(parsed.check_signature(&[other]), SignatureCheck::UnknownKey);
}

#[test]
fn tampering_breaks_the_signature() {
    let bytes = SignedManifest::sign(sample(), &key()).to_bytes();
    let text = String::from_utf8(bytes).unwrap();
    let forged = text.replace("\"event_count\":2", "\"event_count\":3");
    let parsed = SignedManifest::parse(forged.as_bytes()).unwrap();
    assert_eq!(
        parsed.verify_signature(&[key().public()]),
        Err(SignatureFailure::DoesNotVerify(key().key_id()))
    );
}

#[test]
fn layout_failures() {
    let good = SignedManifest::sign(sample(), &key()).to_bytes();
    let mut three = good.clone();
    three.extend_from_slice(b"x\n");
    let no_final_newline = &good[..good.len() - 1];
    for bad in [&b"{}"[..], &three, no_final_newline, b"\n"] {
        assert_eq!(
            SignedManifest::parse(bad).unwrap_err(),
            ManifestError::Layout,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// FORMAT.md §6.1 structure tier (issue 7, questions 5 and 6).
#[test]
fn structure_failures_are_parse_errors() {
    let cases: &[(&str, &str)] = &[
        ("{\"format\"", "{\"x\":1,\"format\""),
        ("\"partition\":0", "\"partition\":0,\"extra\":1"),
        ("\"version_id\":null", "\"version_id\":null,\"etag\":\"x\""),
        ("\"seq\":0", "\"seq\":0,\"seq\":0"),
        ("\"partition\":0", "\"partition\":0,\"partition\":0"),
        ("\"size\":10", "\"size\":10,\"size\":10"),
        ("\"seq\":0", "\"seq\":0.0"),
        ("\"seq\":0", "\"seq\":1e0"),
        ("\"seq\":0", "\"seq\":-1"),
        ("\"seq\":0", "\"seq\":9223372036854775808"),
        ("\"event_count\":2", "\"event_count\":9223372036854775808"),
        ("\"size\":10", "\"size\":9223372036854775808"),
        ("\"first_offset\":1", "\"first_offset\":-1"),
        ("\"last_offset\":3", "\"last_offset\":9223372036854775808"),
        ("\"partition\":0", "\"partition\":2147483648"),
        ("\"partition\":0", "\"partition\":-1"),
        ("\"rejected\":[[2,2]]", "\"rejected\":[[2,2,2]]"),
        ("\"rejected\":[[2,2]]", "\"rejected\":[[-2,2]]"),
        (
            "\"format\":\"cairn.segment.v3\"",
            "\"format\":\"cairn.segment.v4\"",
        ),
        (
            "\"format\":\"cairn.segment.v3\"",
            "\"format\":\"cairn.segment.v2\"",
        ),
        (
            "\"format\":\"cairn.segment.v3\"",
            "\"format\":\"cairn.segment.v1\"",
        ),
        ("\"lost\":[],", ""),
        ("\"store\":\"example.com/vault\",", ""),
        ("\"store\":\"example.com/vault\"", "\"store\":null"),
        ("\"store\":\"example.com/vault\"", "\"store\":7"),
        ("\"lost\":[]", "\"lost\":null"),
        ("\"first_offset\":1", "\"first_offset\":4"),
        ("\"tenants\":[\"acme\"]", "\"tenants\":[\"\\ud800\"]"),
        ("\"tenants\":[\"acme\"]", "\"tenants\":\"acme\""),
        ("\"version_id\":null", "\"version_id\":5"),
        (
            "\"min_occurred_at\"",
            "\"min_occurred_at\":null,\"min_occurred_at\"",
        ),
    ];
    for (from, to) in cases {
        let bytes = resigned(|b| {
            assert!(b.contains(from), "{from}");
            b.replacen(from, to, 1)
        });
        let e = SignedManifest::parse(&bytes).unwrap_err();
        assert!(matches!(e, ManifestError::Structure(_)), "{to}: {e}");
        // The signature can still be judged on the line alone (§8.3 step 4).
        let lines = ManifestLines::split(&bytes).unwrap();
        assert_eq!(lines.verify_line_only(&[key().public()]), Ok(()));
    }
}

#[test]
fn members_in_any_order_and_whitespace_are_accepted() {
    let bytes = resigned(|b| {
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        // serde_json's map without preserve_order sorts keys: another order than ours.
        serde_json::to_string_pretty(&v).unwrap().replace('\n', " ")
    });
    let parsed = SignedManifest::parse(&bytes).unwrap();
    assert_eq!(parsed.manifest.key_id, key().key_id().to_string());
    assert_eq!(
        parsed.check_signature(&[key().public()]),
        SignatureCheck::Valid
    );
}

/// FORMAT.md §6.2: anything wrong with the second line is a signature failure, and the
/// body still parses (issue 7: key id mismatch was reported as an unreadable manifest).
#[test]
fn a_broken_signature_line_is_a_signature_failure_not_a_parse_error() {
    let good = String::from_utf8(SignedManifest::sign(sample(), &key()).to_bytes()).unwrap();
    let (body, line) = good.trim_end().split_once('\n').unwrap();
    let sig_b64 = line.rsplit(' ').next().unwrap();
    let kid = key().key_id().to_string();
    let other_kid = SigningKey::from_seed([9; 32]).key_id().to_string();
    // Flip one of the two unused bits of the last base64 character before the padding.
    let mut noncanonical = sig_b64.as_bytes().to_vec();
    let i = noncanonical.len() - 3;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = ALPHABET.iter().position(|&c| c == noncanonical[i]).unwrap();
    noncanonical[i] = ALPHABET[pos ^ 1];
    let noncanonical = String::from_utf8(noncanonical).unwrap();
    let lines = [
        format!("ed25519 {other_kid} {sig_b64}"),
        format!("ed25519  {kid} {sig_b64}"),
        format!("ed25519 {} {sig_b64}", kid.to_uppercase()),
        format!("ed25519 {kid} {}", sig_b64.trim_end_matches('=')),
        format!("ed25519 {kid} {noncanonical}"),
        format!("ed25519 {kid} {}", &sig_b64[4..]),
        format!("ed25519 {kid} {sig_b64}\r"),
        format!("rsa {kid} {sig_b64}"),
        "garbage".to_string(),
    ];
    for l in lines {
        let bytes = format!("{body}\n{l}\n");
        let parsed = SignedManifest::parse(bytes.as_bytes()).unwrap();
        let r = parsed.verify_signature(&[key().public()]);
        assert!(
            matches!(
                r,
                Err(SignatureFailure::MalformedLine(_) | SignatureFailure::KeyIdMismatch { .. })
            ),
            "{l}: {r:?}"
        );
        assert_eq!(
            parsed.check_signature(&[key().public()]),
            SignatureCheck::Invalid
        );
    }
}

/// FORMAT.md §6.1 rules (issue 7, questions 3 and 4): checked apart from the structure.
#[test]
fn rule_violations_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("\"id\":\"billing\"", "\"id\":\"bil/ling\"", "stream.id"),
        (
            "\"merkle_root\":\"01",
            "\"merkle_root\":\"0A",
            "merkle_root",
        ),
        ("\"merkle_root\":\"01", "\"merkle_root\":\"1", "merkle_root"),
        ("\"key_id\":\"", "\"key_id\":\"A", "key_id"),
        (
            "\"sealed_at\":\"2026-11-26T00:00:00.000000Z\"",
            "\"sealed_at\":\"2026-11-26T00:00:00Z\"",
            "sealed_at",
        ),
        (
            "\"min_occurred_at\":\"2026-11-26T00:00:00.000000Z\"",
            "\"min_occurred_at\":\"2026-11-26T00:00:00.000Z\"",
            "min_occurred_at",
        ),
        (
            "\"min_occurred_at\":\"2026-11-26T00:00:00.000000Z\"",
            "\"min_occurred_at\":null",
            "both null",
        ),
        ("\"rejected\":[[2,2]]", "\"rejected\":[[2,4]]", "outside"),
        ("\"rejected\":[[2,2]]", "\"rejected\":[[3,2]]", "reversed"),
        (
            "\"rejected\":[[2,2]]",
            "\"rejected\":[[3,3],[2,2]]",
            "ascending",
        ),
        ("\"absent\":[]", "\"absent\":[[2,3]]", "share offsets"),
        ("\"lost\":[]", "\"lost\":[[2,2]]", "share offsets"),
        ("\"lost\":[]", "\"lost\":[[3,9]]", "lost range"),
        ("example.com/vault", "a vault", "store:"),
        (
            "\"tenants\":[\"acme\"]",
            "\"tenants\":[\"b\",\"a\"]",
            "tenants",
        ),
        (
            "\"tenants\":[\"acme\"]",
            "\"tenants\":[\"a\",\"a\"]",
            "tenants",
        ),
        (
            "00000000000000000003.parquet",
            "00000000000000000002.parquet",
            "own name",
        ),
        ("\"object\":\"v1", "\"object\":\"../v1", "own name"),
    ];
    for (from, to, says) in cases {
        let bytes = resigned(|b| {
            assert!(b.contains(from), "{from}");
            b.replacen(from, to, 1)
        });
        let parsed = SignedManifest::parse(&bytes).unwrap();
        let v = parsed.manifest.rule_violations();
        assert!(v.iter().any(|m| m.contains(says)), "{to}: {v:?}");
    }
}

/// Format versions (docs/FORMAT.md, "Versions"): a v1 body has no `lost` member and still
/// parses; each version has exactly its own members.
#[test]
fn v1_bodies_still_parse_and_each_version_has_its_own_members() {
    let v1 = resigned(|b| {
        b.replacen(
            "\"format\":\"cairn.segment.v3\"",
            "\"format\":\"cairn.segment.v1\"",
            1,
        )
        .replacen("\"lost\":[],", "", 1)
        .replacen("\"store\":\"example.com/vault\",", "", 1)
    });
    let parsed = SignedManifest::parse(&v1).unwrap();
    assert_eq!(parsed.manifest.lost, None);
    assert!(parsed.manifest.lost().is_empty());
    assert!(parsed.manifest.rule_violations().is_empty());
    assert_eq!(
        parsed.check_signature(&[key().public()]),
        SignatureCheck::Valid
    );
    let v2 = resigned(|b| {
        b.replacen(
            "\"format\":\"cairn.segment.v3\"",
            "\"format\":\"cairn.segment.v2\"",
            1,
        )
        .replacen("\"store\":\"example.com/vault\",", "", 1)
    });
    let parsed = SignedManifest::parse(&v2).unwrap();
    assert_eq!(parsed.manifest.store, None);
    assert!(parsed.manifest.rule_violations().is_empty());
    let v3 = SignedManifest::sign(sample(), &key());
    let body = String::from_utf8(v3.body.clone()).unwrap();
    assert!(
        body.contains("\"absent\":[],\"lost\":[],\"min_occurred_at\""),
        "lost follows absent: {body}"
    );
    assert!(
        body.starts_with(
            "{\"format\":\"cairn.segment.v3\",\"store\":\"example.com/vault\",\"stream\""
        ),
        "store follows format: {body}"
    );
}

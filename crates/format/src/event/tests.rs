use super::*;

const GOOD: &str = r#"{"event_id":"0b9f7a5e-6c1d-4e2a-9f3b-1a2b3c4d5e6f","occurred_at":"2026-11-26T10:00:00.123456+01:00","tenant":"acme","actor":{"id":"u1","type":"user","ip":"10.0.0.1"},"action":"invoice.read","resource":{"type":"invoice","id":"inv-1"},"outcome":"success","source":"billing","sensitivity":"pii","details":{"b":"2","a":"1"}}"#;

fn err(json: &str) -> EventError {
    AuditEvent::from_json(json.as_bytes()).unwrap_err()
}

#[test]
fn parses_a_valid_event_into_utc_micros() {
    let e = AuditEvent::from_json(GOOD.as_bytes()).unwrap();
    assert_eq!(
        format_micros(e.occurred_at_us).unwrap(),
        "2026-11-26T09:00:00.123456Z"
    );
    assert_eq!(e.actor.ip.as_deref(), Some("10.0.0.1"));
    let keys: Vec<_> = e.details.unwrap().into_keys().collect();
    assert_eq!(keys, ["a", "b"]);
}

#[test]
fn errors_name_the_field() {
    let missing = GOOD.replace(r#""tenant":"acme","#, "");
    assert_eq!(
        err(&missing),
        EventError::Field {
            field: "tenant".into(),
            message: "missing field `tenant`".into()
        }
    );
    let unknown = GOOD.replace(r#""tenant":"acme","#, r#""tenant":"acme","extra":1,"#);
    assert!(matches!(err(&unknown), EventError::Field { field, .. } if field == "extra"));
    let nested_missing = GOOD.replace(r#""type":"user","#, "");
    assert!(
        matches!(err(&nested_missing), EventError::Field { field, .. } if field == "actor.type")
    );
    let wrong_type = GOOD.replace(r#""action":"invoice.read""#, r#""action":5"#);
    assert!(matches!(err(&wrong_type), EventError::Field { field, .. } if field == "action"));
    let bad_enum = GOOD.replace(r#""outcome":"success""#, r#""outcome":"maybe""#);
    assert!(matches!(err(&bad_enum), EventError::Field { field, .. } if field == "outcome"));
    let bad_uuid = GOOD.replace("0b9f7a5e-", "zz");
    assert!(matches!(err(&bad_uuid), EventError::Field { field, .. } if field == "event_id"));
    let bad_ts = GOOD.replace("2026-11-26T10", "2026-13-26T10");
    assert!(matches!(err(&bad_ts), EventError::Field { field, .. } if field == "occurred_at"));
    let bad_ip = GOOD.replace("10.0.0.1", "ten");
    assert!(matches!(err(&bad_ip), EventError::Field { field, .. } if field == "actor.ip"));
    let dup = GOOD.replace(r#""a":"1""#, r#""a":"1","a":"3""#);
    assert!(
        matches!(err(&dup), EventError::Field { field, message } if field == "details" && message.contains("duplicate key `a`")),
        "{:?}",
        err(&dup)
    );
    let dup_field = GOOD.replace(r#""tenant":"acme","#, r#""tenant":"acme","tenant":"evil","#);
    assert!(
        matches!(err(&dup_field), EventError::Field { ref field, .. } if field == "tenant"),
        "{:?}",
        err(&dup_field)
    );
    let bad_detail = GOOD.replace(r#""a":"1""#, r#""a":1"#);
    assert!(matches!(err(&bad_detail), EventError::Field { field, .. } if field == "details.a"));
    assert!(matches!(err("{not json"), EventError::Json(_)));
    assert!(matches!(err(""), EventError::Json(_)));
}

/// Issue 13: the parser threads build rows from the line's own bytes; escaped strings
/// (which cannot be borrowed) still come out decoded, and both agree with `from_json`.
#[test]
fn with_json_borrows_plain_strings_and_decodes_escaped_ones() {
    let escaped = GOOD.replace(r#""tenant":"acme""#, r#""tenant":"ac\"me""#);
    for json in [GOOD.to_string(), escaped] {
        let bytes = json.as_bytes();
        let owned = AuditEvent::from_json(bytes).unwrap();
        let within = |s: &str| bytes.as_ptr_range().contains(&s.as_ptr());
        AuditEvent::with_json(bytes, |v| {
            assert_eq!(*v, owned.view());
            assert!(within(v.event_id) && within(v.action) && within(v.actor_ip.unwrap()));
            assert_eq!(within(v.tenant), !v.tenant.contains('"'), "{}", v.tenant);
            assert_eq!(v.details.as_deref(), Some(&[("a", "1"), ("b", "2")][..]));
        })
        .unwrap();
    }
    assert!(
        AuditEvent::with_json(GOOD.replace("acme", "").as_bytes(), |_| ()).is_err(),
        "validated before f sees it"
    );
}

#[test]
fn sub_microsecond_timestamps_are_rejected_not_truncated() {
    let e = err(&GOOD.replace(".123456+01:00", ".1234567+01:00"));
    assert!(matches!(e, EventError::Field { field, .. } if field == "occurred_at"));
}

#[test]
fn timestamps_outside_the_years_0001_to_9999_are_rejected() {
    // Regression (issue 7): a manifest bound must always have the canonical form.
    let e = err(&GOOD.replace("2026-11-26T10:00:00.123456+01:00", "0000-12-31T23:59:59Z"));
    assert!(matches!(e, EventError::Field { field, .. } if field == "occurred_at"));
    assert_eq!(format_micros(MIN_TIMESTAMP_US - 1), None);
    assert_eq!(format_micros(MAX_TIMESTAMP_US + 1), None);
    assert_eq!(
        format_micros(MAX_TIMESTAMP_US).unwrap(),
        "9999-12-31T23:59:59.999999Z"
    );
    assert_eq!(
        format_micros(MIN_TIMESTAMP_US).unwrap(),
        "0001-01-01T00:00:00.000000Z"
    );
}

#[test]
fn only_the_canonical_timestamp_form_parses() {
    let us = parse_canonical_timestamp("2026-11-26T09:30:01.000000Z").unwrap();
    assert_eq!(format_micros(us).unwrap(), "2026-11-26T09:30:01.000000Z");
    for bad in [
        "2026-11-26T09:30:01Z",
        "2026-11-26T09:30:01.000Z",
        "2026-11-26T09:30:01.0000000Z",
        "2026-11-26T09:30:01.000000+00:00",
        "2026-11-26t09:30:01.000000Z",
        "2026-11-26T09:30:01.000000z",
        "2026-02-30T09:30:01.000000Z",
        "2026-12-31T23:59:60.000000Z",
        "0000-01-01T00:00:00.000000Z",
        "+2026-11-26T09:30:01.00000Z",
        "2026-11-26T09:30:01.00000aZ",
        "",
    ] {
        assert_eq!(parse_canonical_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn stream_ids_follow_kafka_topic_rules() {
    assert!(StreamId::new("billing.v1-x_y", 0).is_ok());
    for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
        assert!(StreamId::new(bad, 0).is_err(), "{bad:?}");
    }
    assert!(StreamId::new("ok", -1).is_err());
}

/// Issue 13: the scanner that parses the common shape must build exactly what serde builds,
/// and leave everything else to serde. Checked on valid lines of several shapes and on every
/// single-byte mutation of them (replaced by one of a set of JSON-significant bytes, or
/// deleted): whenever the scanner accepts a line, serde accepts it and gives the same event.
#[test]
fn the_fast_scanner_agrees_with_serde_on_every_line_it_accepts() {
    let shapes = [
        GOOD.to_string(),
        GOOD.replace(r#","details":{"b":"2","a":"1"}"#, ""),
        GOOD.replace(r#"{"b":"2","a":"1"}"#, "null"),
        GOOD.replace(r#"{"b":"2","a":"1"}"#, "{}"),
        GOOD.replace(r#""ip":"10.0.0.1""#, r#""ip":null"#),
        GOOD.replace(r#","ip":"10.0.0.1""#, ""),
        GOOD.replace(r#""tenant":"acme""#, r#""tenant":"a\u00e9c""#),
        GOOD.replace(r#""tenant":"acme""#, "\"tenant\":\"\u{e9}t\u{e9}\""),
        format!(" \t{}\r\n ", GOOD.replace(',', " ,\n").replace(':', " : ")),
        // Key order does not matter.
        GOOD.replace(
            r#""outcome":"success","source":"billing","#,
            r#""source":"billing","outcome":"success","#,
        ),
    ];
    let accepted_shapes = shapes
        .iter()
        .filter(|s| fast::parse(s.as_bytes()).is_some())
        .count();
    assert_eq!(
        accepted_shapes, 9,
        "all but the escaped string take the fast path"
    );
    let replacements = b"\"\\,:{}[] xn0\x01\x7f\xff";
    let (mut checked, mut accepted) = (0, 0);
    for shape in &shapes {
        let bytes = shape.as_bytes();
        let mut variants = vec![bytes.to_vec()];
        for i in 0..bytes.len() {
            let mut deleted = bytes.to_vec();
            deleted.remove(i);
            variants.push(deleted);
            for &r in replacements {
                let mut v = bytes.to_vec();
                v[i] = r;
                variants.push(v);
            }
        }
        for v in variants {
            checked += 1;
            if let Some(fast) = fast::parse(&v) {
                accepted += 1;
                let serde = serde_json::from_slice::<RawEvent<'_>>(&v);
                assert_eq!(
                    serde.as_ref().ok(),
                    Some(&fast),
                    "{:?}",
                    String::from_utf8_lossy(&v)
                );
            }
        }
    }
    assert!(checked > 40_000 && accepted > 1_000, "{checked} {accepted}");
    // What one byte cannot make: repeated keys, which serde refuses and names.
    for repeated in [
        GOOD.replace(r#""tenant":"acme","#, r#""tenant":"acme","tenant":"evil","#),
        GOOD.replace(r#""type":"user","#, r#""type":"user","type":"bot","#),
        GOOD.replace(r#""a":"1""#, r#""a":"1","a":"3""#),
    ] {
        assert!(fast::parse(repeated.as_bytes()).is_none(), "{repeated}");
        assert!(AuditEvent::from_json(repeated.as_bytes()).is_err());
    }
}

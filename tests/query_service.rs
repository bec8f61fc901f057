//! `cairn serve` end to end: a vault sealed by `cairn seal`, the service started as a process
//! with API keys per role and the shipped policies, and requests over HTTP. Every assertion
//! compares with what the policy allows, computed here from the events themselves.

use std::collections::BTreeSet;

use cairn_tests::serve::{KEYS, NOW_DAYS_AGO_OLD, Server, events, seal_vault, vault};
use cairn_tests::{keygen, make_writable};
use serde_json::{Value, json};

fn key(name: &str) -> &'static str {
    KEYS.iter().find(|k| k.name == name).unwrap().key
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn is_old(e: &Value) -> bool {
    // Events older than the analyst's 90-day window were written NOW_DAYS_AGO_OLD days ago.
    let t = e["occurred_at"].as_str().unwrap();
    let old = cairn_tests::serve::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - (NOW_DAYS_AGO_OLD - 10) * 86_400,
    );
    t < old.as_str()
}

fn allowed_ids(evs: &[Value], tenant: &str, window: bool) -> BTreeSet<String> {
    evs.iter()
        .filter(|e| e["tenant"] == tenant && !(window && is_old(e)))
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn ok(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body:#}");
}

#[test]
fn roles_see_exactly_what_the_policy_grants_and_masks_hold_under_hostile_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let (keys, store, evs) = vault(tmp.path(), 60);
    let server = Server::start(tmp.path(), &store, &keys, "");
    let ann = key("ann");

    // Row filters: own tenant, last 90 days; nothing else, whatever the SQL says.
    let acme = allowed_ids(&evs, "acme", true);
    assert!(acme.len() > 20 && acme.len() < 60);
    for sql in [
        "SELECT event_id FROM events",
        "SELECT event_id FROM events WHERE tenant = 'globex' OR 1 = 1",
        "SELECT event_id FROM events UNION ALL SELECT event_id FROM events WHERE tenant <> 'acme'",
        "SELECT b.event_id FROM events a JOIN events b ON a.actor['id'] = b.actor['id'] WHERE b.tenant = 'globex' OR a.tenant = 'acme'",
        "WITH x AS (SELECT * FROM events) SELECT event_id FROM x WHERE event_id IN (SELECT event_id FROM events)",
        "SELECT event_id FROM (SELECT *, row_number() OVER (PARTITION BY tenant ORDER BY occurred_at) AS n FROM events) WHERE n > 0",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT DISTINCT event_id FROM events, r",
        "SeLeCt /* comment */ event_id FrOm EVENTS -- trailing",
        "SELECT event_id FROM events WHERE occurred_at < now() - INTERVAL '100 days' OR tenant = 'acme'",
    ] {
        let (status, body) = server.query(ann, sql);
        ok(status, &body);
        let got = ids(&body);
        assert!(
            got.is_subset(&acme),
            "{sql}: leaked {:?}",
            got.difference(&acme).collect::<Vec<_>>()
        );
        if sql
            != "SELECT event_id FROM events WHERE occurred_at < now() - INTERVAL '100 days' OR tenant = 'acme'"
        {
            assert_eq!(got, acme, "{sql}");
        }
    }
    let (status, body) = server.query(
        ann,
        "SELECT count(*) AS n FROM events WHERE tenant = 'globex'",
    );
    ok(status, &body);
    assert_eq!(body["rows"][0]["n"], 0);
    let (_, body) = server.query(
        ann,
        "SELECT count(*) AS n FROM events WHERE occurred_at < now() - INTERVAL '100 days'",
    );
    assert_eq!(body["rows"][0]["n"], 0, "the 90-day window holds");

    // A predicate that fails only on rows the policy removes must not fail: the row filter is
    // applied before the caller's SQL runs, not merged into it (a failing cast would otherwise
    // print another tenant's value, and failing at all is an oracle). Found by probing
    // `cairn serve`: the error named 'globex' and a globex IP.
    for sql in [
        "SELECT count(*) AS n FROM events WHERE CASE WHEN tenant <> 'acme' THEN CAST(tenant AS INT) ELSE 0 END = 1",
        "SELECT count(*) AS n FROM events WHERE CAST(CASE WHEN tenant <> 'acme' THEN actor['ip'] ELSE '0' END AS INT) = 1",
        "SELECT count(*) AS n FROM events WHERE CASE WHEN occurred_at < now() - INTERVAL '100 days' THEN CAST(tenant AS INT) ELSE 0 END = 1",
        "SELECT count(*) AS n FROM events WHERE CASE WHEN sensitivity = 'confidential' THEN CAST(actor['ip'] AS INT) ELSE 0 END = 1",
    ] {
        let (status, body) = server.query(ann, sql);
        assert_eq!(status, 200, "{sql}: {body}");
        assert_eq!(body["rows"][0]["n"], 0, "{sql}");
    }

    // Masks: actor.ip and details are NULL on confidential/pii rows, for every use of them.
    let (status, body) = server.query(
        ann,
        "SELECT sensitivity, actor['ip'] AS ip, details FROM events",
    );
    ok(status, &body);
    for row in body["rows"].as_array().unwrap() {
        let sensitive = matches!(row["sensitivity"].as_str(), Some("confidential" | "pii"));
        assert!(
            row.get("ip").is_some() && row.get("details").is_some(),
            "explicit nulls: {row}"
        );
        assert_eq!(row.get("ip").is_none_or(Value::is_null), sensitive, "{row}");
        assert_eq!(
            row.get("details").is_none_or(Value::is_null),
            sensitive,
            "{row}"
        );
    }
    // acme's events are public or confidential (see serve::events).
    let pii = evs
        .iter()
        .find(|e| e["tenant"] == "acme" && e["sensitivity"] == "confidential" && !is_old(e))
        .unwrap();
    let pii_ip = pii["actor"]["ip"].as_str().unwrap();
    for sql in [
        format!("SELECT count(*) AS n FROM events WHERE actor['ip'] = '{pii_ip}' AND sensitivity = 'confidential'"),
        format!("SELECT count(*) AS n FROM events WHERE get_field(actor, 'ip') LIKE '{pii_ip}%' AND sensitivity = 'confidential'"),
        "SELECT count(DISTINCT actor['ip']) AS n FROM events WHERE sensitivity IN ('pii', 'confidential')".to_string(),
        "SELECT count(*) AS n FROM events WHERE details['card_last4'] IS NOT NULL AND sensitivity = 'confidential'".to_string(),
        "SELECT count(*) AS n FROM events a JOIN events b ON a.actor['ip'] = b.actor['ip'] WHERE a.sensitivity = 'confidential'".to_string(),
    ] {
        let (status, body) = server.query(ann, &sql);
        ok(status, &body);
        assert_eq!(body["rows"][0]["n"], 0, "{sql}: a masked value was visible");
    }
    let (_, body) = server.query(ann, "SELECT min(actor['ip']) AS lo, max(actor['ip']) AS hi FROM events WHERE sensitivity = 'confidential'");
    assert!(
        body["rows"][0].get("lo").is_none_or(Value::is_null),
        "{body}"
    );
    // The same questions, asked by security (own tenant, unmasked): the data is there.
    let (_, body) = server.query(key("sue"), &format!("SELECT count(*) AS n FROM events WHERE actor['ip'] = '{pii_ip}' AND sensitivity = 'confidential'"));
    assert!(body["rows"][0]["n"].as_u64().unwrap() >= 1, "{body}");
    let (_, body) = server.query(key("sue"), "SELECT event_id FROM events");
    assert_eq!(
        ids(&body),
        allowed_ids(&evs, "acme", false),
        "security has no time window"
    );

    // tenant-admin: hashed IPs on sensitive rows (SHA-256 hex of the value).
    let (_, body) = server.query(
        key("tad"),
        &format!(
            "SELECT actor['ip'] AS ip FROM events WHERE event_id = '{}'",
            pii["event_id"].as_str().unwrap()
        ),
    );
    let want = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(pii_ip.as_bytes()))
    };
    assert_eq!(body["rows"][0]["ip"], want, "{body}");

    // The auditor sees every tenant; the response says what was applied.
    let (status, body) = server.query(key("aud"), "SELECT event_id FROM events");
    ok(status, &body);
    assert_eq!(ids(&body).len(), evs.len());
    assert!(
        body["policy"]["revision"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(!body["segments"].as_array().unwrap().is_empty());
    assert!(body["decision_id"].as_str().unwrap().len() == 36);

    // Break-glass: denied without a justification; with one, every tenant, flagged.
    let (status, body) = server.query(key("bob"), "SELECT count(*) AS n FROM events");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "denied");
    assert_eq!(
        body["error"]["reasons"],
        json!(["break-glass requires a justification"])
    );
    let (status, body) = server.query_body(
        key("bob"),
        &json!({"sql": "SELECT count(*) AS n FROM events", "justification": "INC-42"}),
    );
    ok(status, &body);
    assert_eq!(body["rows"][0]["n"], evs.len());
    assert_eq!(body["policy"]["flags"], json!(["break_glass"]));
}

#[test]
fn denials_and_refusals_are_json_with_stable_codes_and_read_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (keys, store, _) = vault(tmp.path(), 10);
    let server = Server::start(
        tmp.path(),
        &store,
        &keys,
        "[query.limits]\nmax_rows = 5\nmax_sql_bytes = 2000\n",
    );
    let ann = key("ann");
    let code = |(status, body): (u16, Value)| {
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_string(),
            body,
        )
    };

    // Policy denials: the access log, no role, an unknown table for a role.
    let (s, c, body) = code(server.query(ann, "SELECT * FROM access_log"));
    assert_eq!((s, c.as_str()), (403, "denied"), "{body}");
    assert_eq!(
        body["error"]["reasons"],
        json!(["role analyst may not read table access_log"])
    );
    assert_eq!(body["error"]["decision_id"].as_str().unwrap().len(), 36);
    let (s, c, _) = code(server.query(key("nob"), "SELECT count(*) FROM events"));
    assert_eq!((s, c.as_str()), (403, "denied"));
    let (s, _, body) = code(server.query(key("aud"), "SELECT count(*) AS n FROM access_log"));
    assert_eq!(s, 200, "{body}");

    // Read-only surface: every one refused before any data is read.
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT * FROM events",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "INSERT INTO events SELECT * FROM events",
        "COPY events TO '/tmp/out.parquet'",
        "SET datafusion.execution.batch_size = 1",
        "EXPLAIN SELECT * FROM events",
        "EXPLAIN ANALYZE SELECT * FROM events",
        "DESCRIBE events",
        "DROP TABLE events",
    ] {
        let (s, c, body) = code(server.query(ann, sql));
        assert!(
            s == 400 && (c == "not_allowed" || c == "bad_sql"),
            "{sql}: {s} {body}"
        );
    }
    for sql in [
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM \"EVENTS\"",
        "SELECT nosuchcolumn FROM events",
        "SELEC 1",
        "SELECT * FROM events WHERE",
    ] {
        let (s, c, body) = code(server.query(ann, sql));
        assert_eq!((s, c.as_str()), (400, "bad_sql"), "{sql}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // Where DataFusion locates the mistake, the error says where (1-based line and column);
    // sqlparser gives no position for an unexpected end of input.
    for (sql, line, column) in [
        ("SELEC 1", 1, 1),
        ("SELECT action\nFROM events WHERE tenant = = 'x'", 2, 28),
        ("SELECT action,\n  nosuchcolumn FROM events", 2, 3),
    ] {
        let (s, c, body) = code(server.query(ann, sql));
        assert_eq!((s, c.as_str()), (400, "bad_sql"), "{sql}: {body}");
        assert_eq!(
            body["error"]["position"],
            serde_json::json!({"line": line, "column": column}),
            "{sql}: {body}"
        );
    }

    // Limits.
    let (s, c, _) = code(server.query(key("aud"), "SELECT * FROM events"));
    assert_eq!((s, c.as_str()), (422, "row_limit"));
    let (s, c, _) = code(server.query(
        key("aud"),
        &format!("SELECT 1 FROM events WHERE action = '{}'", "x".repeat(3000)),
    ));
    assert_eq!((s, c.as_str()), (413, "request_too_large"));

    // Authentication.
    let (s, _, body) = server.request("POST", "/v1/query", &[], br#"{"sql":"SELECT 1"}"#);
    assert_eq!(s, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"],
        "unauthenticated"
    );
    let (s, c, _) = code(server.query("not-a-key", "SELECT count(*) FROM events"));
    assert_eq!((s, c.as_str()), (401, "unauthenticated"));
    let (s, _, _) = server.request(
        "POST",
        "/v1/query",
        &[("authorization", "Bearer abc.def.ghi")],
        br#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(s, 401);

    // Malformed bodies are 400s, not 500s.
    for body in [
        &b"not json"[..],
        br#"{"sql": 1}"#,
        br#"{"query":"SELECT 1"}"#,
        br#"{"sql":"SELECT 1","format":"xml"}"#,
        b"",
    ] {
        let (s, _, resp) = server.request("POST", "/v1/query", &[("x-api-key", ann)], body);
        assert_eq!(
            s,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&resp)
        );
    }
    let metrics = String::from_utf8(server.request("GET", "/metrics", &[], b"").2).unwrap();
    assert!(
        metrics.contains("cairn_query_requests_total{code=\"denied\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("code=\"internal\""), "{metrics}");
}

#[test]
fn a_tampered_segment_is_excluded_counted_and_never_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (keys, store, evs) = vault(tmp.path(), 40);
    // Change one byte of one Parquet file (the manifest's hash no longer matches).
    let victim = cairn_tests::objects(&store)
        .into_iter()
        .find(|o| o.ends_with(".parquet"))
        .unwrap();
    let path = store.join(&victim);
    make_writable(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let server = Server::start(tmp.path(), &store, &keys, "");
    let (status, body) = server.query(key("aud"), "SELECT event_id, tenant FROM events");
    ok(status, &body);
    let excluded = body["excluded_segments"].as_array().unwrap();
    assert_eq!(excluded.len(), 1, "{body:#}");
    assert!(
        excluded[0]["object"]
            .as_str()
            .unwrap()
            .ends_with(".manifest")
    );
    assert_eq!(
        body["rows"].as_array().unwrap().len(),
        evs.len() - 16,
        "the tampered segment's 16 rows are not served"
    );
    let metrics = String::from_utf8(server.request("GET", "/metrics", &[], b"").2).unwrap();
    assert!(
        metrics.contains("cairn_query_segments_excluded 1"),
        "{metrics}"
    );
}

#[test]
fn a_tenants_queries_never_read_segments_of_other_tenants_only() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    // One stream with acme and globex, one with globex only.
    let mixed = events(10);
    let store = seal_vault(tmp.path(), "billing", &mixed, &keys);
    let globex: Vec<Value> = events(20)
        .into_iter()
        .filter(|e| e["tenant"] == "globex")
        .map(|mut e| {
            let id = e["event_id"]
                .as_str()
                .unwrap()
                .replace("00000000-", "11111111-");
            e["event_id"] = json!(id);
            e
        })
        .collect();
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let second = seal_vault(&other, "audit.globex", &globex, &keys);
    // Move the second stream into the first vault (both signed by the same key).
    let from = second.join("v1/streams/audit.globex");
    std::fs::rename(&from, store.join("v1/streams/audit.globex")).unwrap();

    let server = Server::start(tmp.path(), &store, &keys, "");
    let (status, body) = server.query(key("ann"), "SELECT count(*) AS n FROM events");
    ok(status, &body);
    let read: Vec<&str> = body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["manifest"].as_str().unwrap())
        .collect();
    assert!(!read.is_empty());
    assert!(
        read.iter().all(|m| m.contains("/billing/")),
        "acme read globex-only segments: {read:?}"
    );
    let (_, body) = server.query(key("gus"), "SELECT count(*) AS n FROM events");
    assert!(
        body["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["manifest"].as_str().unwrap().contains("/audit.globex/"))
    );

    // Formats: CSV and an Arrow IPC stream, chosen by `format` or Accept.
    let (s, head, csv) = server.request(
        "POST",
        "/v1/query",
        &[("x-api-key", key("ann")), ("accept", "text/csv")],
        br#"{"sql":"SELECT action, count(*) AS n FROM events GROUP BY action ORDER BY action"}"#,
    );
    assert_eq!(s, 200);
    assert!(head.to_ascii_lowercase().contains("x-cairn-decision-id"));
    assert!(String::from_utf8(csv).unwrap().starts_with("action,n\n"));
    let (s, _, arrow) = server.request(
        "POST",
        "/v1/query",
        &[("x-api-key", key("ann"))],
        br#"{"sql":"SELECT event_id FROM events","format":"arrow"}"#,
    );
    assert_eq!(s, 200);
    assert_eq!(
        &arrow[..4],
        &[0xff, 0xff, 0xff, 0xff],
        "an Arrow IPC stream starts with a continuation marker"
    );

    // What the caller may query, masked columns marked.
    let (s, _, tables) = server.request("GET", "/v1/tables", &[("x-api-key", key("ann"))], b"");
    assert_eq!(s, 200);
    let tables: Value = serde_json::from_slice(&tables).unwrap();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["events"], "no access log for an analyst");
    let actor = tables["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "actor")
        .unwrap()
        .clone();
    assert_eq!(actor["masked"], json!(["actor.ip"]));
}

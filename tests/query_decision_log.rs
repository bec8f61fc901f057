//! The decision log against a real Apache Kafka broker: every request to `cairn serve` is one
//! acknowledged record before any data is read (fail closed when the broker is down, ready
//! again on its own), allowed queries add a completion record, alerts fire at their
//! thresholds only, the decisions topic is sealed by `cairn ingest` and served back as the
//! `access_log` table, and signed results verify offline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_tests::cli::{Keys, cairn, keygen, make_writable, objects, verify};
use cairn_tests::ingester::Ingester;
use cairn_tests::kafka::{Broker, records};
use cairn_tests::serve::{Server, vault};
use serde_json::{Value, json};

const DECISIONS: &str = "cairn.decisions";
/// One client's requests: (body, expected status, expected code).
type Plan = Vec<(Value, u16, &'static str)>;
/// What a client got back: (status, code, decision id).
type Got = Vec<(u16, String, Option<String>)>;
const ALERTS: &str = "cairn.alerts";

fn broker() -> Broker {
    let broker = Broker::start();
    broker.create_topic(DECISIONS, 3);
    broker.create_topic(ALERTS, 1);
    broker
}

/// `cairn serve` recording to `broker`, alerts at low thresholds, at most 50 rows.
fn serve(dir: &Path, store: &Path, keys: &Keys, broker: &Broker, top: &str) -> Server {
    Server::start_with(
        dir,
        store,
        keys,
        top,
        &format!(
            "[query.decision_log]\nbrokers = \"{}\"\nack_timeout_ms = 3000\n\
             [query.decision_log.alerts]\ndenials = 3\ndenials_window_secs = 600\nmax_tenants = 1\nmax_rows = 20\n\
             [query.limits]\nmax_rows = 50\n",
            broker.addr
        ),
    )
}

/// (status, error code or "ok", decision id the client received).
fn ask(server: &Server, key: &str, body: &Value) -> (u16, String, Option<String>) {
    let (s, v) = server.query_body(key, body);
    let code = v["error"]["code"].as_str().unwrap_or("ok").to_string();
    let id = v["decision_id"]
        .as_str()
        .or(v["error"]["decision_id"].as_str())
        .map(str::to_string);
    (s, code, id)
}

fn metric(server: &Server, name: &str) -> f64 {
    let (_, _, body) = server.request("GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&body).to_string();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

fn detail<'a>(record: &'a Value, name: &str) -> &'a str {
    record["details"][name].as_str().unwrap_or("")
}

#[test]
fn every_request_is_one_acknowledged_record_in_order_with_completions_and_alerts() {
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let (keys, store, _) = vault(dir.path(), 40);
    let server = serve(dir.path(), &store, &keys, &broker, "");

    let q = |sql: &str| json!({ "sql": sql });
    // One sequential client per subject, all at once. (key, requests, expected (status, code)).
    let plans: Vec<(&str, Plan)> = vec![
        (
            "key-analyst-acme",
            [
                (q("SELECT count(*) FROM events"), 200, "ok"),
                (q("SELEC 1"), 400, "bad_sql"),
                (q("SELECT * FROM access_log"), 403, "denied"),
                (
                    q("SELECT action, count(*) FROM events GROUP BY 1"),
                    200,
                    "ok",
                ),
            ]
            .iter()
            .cycle()
            .take(8)
            .cloned()
            .collect(),
        ),
        (
            "key-auditor",
            [
                (q("SELECT count(*) FROM access_log"), 200, "ok"),
                (q("SELECT * FROM events"), 422, "row_limit"),
                (
                    q("SELECT tenant, count(*) FROM events GROUP BY 1"),
                    200,
                    "ok",
                ),
            ]
            .iter()
            .cycle()
            .take(6)
            .cloned()
            .collect(),
        ),
        (
            "key-nobody",
            vec![(q("SELECT 1 FROM events"), 403, "denied"); 3],
        ),
        (
            "not-a-key",
            vec![(q("SELECT 1 FROM events"), 401, "unauthenticated"); 2],
        ),
        (
            "key-break-glass",
            vec![(
                json!({"sql": "SELECT event_id FROM events WHERE tenant = 'acme'", "justification": "INC-42"}),
                200,
                "ok",
            )],
        ),
    ];
    let results: Vec<(String, Got)> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|(key, reqs)| {
                let server = &server;
                s.spawn(move || {
                    let got: Vec<_> = reqs.iter().map(|(b, _, _)| ask(server, key, b)).collect();
                    (key.to_string(), got)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sent = Vec::new();
    let mut allowed = BTreeMap::new();
    for ((key, reqs), (_, got)) in plans.iter().zip(&results) {
        for ((_, status, code), (s, c, id)) in reqs.iter().zip(got) {
            assert_eq!((*s, c.as_str()), (*status, *code), "{key}");
            let id = id
                .clone()
                .unwrap_or_else(|| panic!("{key}: no decision id"));
            if *status == 200 || *code == "row_limit" {
                allowed.insert(id.clone(), code.to_string());
            }
            sent.push(id);
        }
    }
    assert_eq!(sent.len(), 20);

    let all = records(&broker, DECISIONS, sent.len() + allowed.len());
    for (_, _, _, r) in &all {
        cairn_format::AuditEvent::from_json(r.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("not an audit event ingest accepts: {e}: {r}"));
        assert_eq!(r["source"], "cairn-query");
        assert_eq!(r["sensitivity"], "confidential");
    }
    let decisions: Vec<&(i32, i64, String, Value)> = all
        .iter()
        .filter(|r| r.3["action"] == "query.execute")
        .collect();
    let completions: Vec<&Value> = all
        .iter()
        .filter(|r| r.3["action"] == "query.complete")
        .map(|r| &r.3)
        .collect();
    assert_eq!(all.len(), decisions.len() + completions.len());

    // Exactly one decision record per request, carrying the id the client received.
    let mut logged: Vec<String> = decisions
        .iter()
        .map(|r| r.3["event_id"].as_str().unwrap().to_string())
        .collect();
    logged.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(logged, expected);

    // In order per subject: one key per subject, so one partition, in request order.
    for ((key, _), (_, got)) in plans.iter().zip(&results) {
        let subject = match *key {
            "key-analyst-acme" => "ann".to_string(),
            "key-auditor" => "aud".into(),
            "key-nobody" => "nob".into(),
            "key-break-glass" => "bob".into(),
            _ => "anonymous@127.0.0.1".into(),
        };
        let in_topic: Vec<&str> = decisions
            .iter()
            .filter(|r| r.2 == subject)
            .map(|r| r.3["event_id"].as_str().unwrap())
            .collect();
        let asked: Vec<&str> = got.iter().map(|g| g.2.as_deref().unwrap()).collect();
        assert_eq!(in_topic, asked, "{subject}: order in the topic");
        let partitions: BTreeSet<i32> = decisions
            .iter()
            .filter(|r| r.2 == subject)
            .map(|r| r.0)
            .collect();
        assert_eq!(partitions.len(), 1, "{subject}");
    }

    // What the records say.
    let by_id: BTreeMap<&str, &Value> = decisions
        .iter()
        .map(|r| (r.3["event_id"].as_str().unwrap(), &r.3))
        .collect();
    let ann = &results[0].1;
    let ok = by_id[ann[0].2.as_deref().unwrap()];
    assert_eq!(ok["outcome"], "success");
    assert_eq!(ok["tenant"], "acme");
    assert_eq!(ok["actor"]["id"], "ann");
    assert_eq!(ok["actor"]["type"], "api_key");
    assert_eq!(ok["actor"]["ip"], "127.0.0.1");
    assert_eq!(ok["resource"]["id"], "events");
    assert_eq!(detail(ok, "path"), "cairn/authz/decision");
    assert_eq!(detail(ok, "policy_engine"), "regorus");
    assert!(detail(ok, "policy_revision").starts_with("sha256:"), "{ok}");
    assert_eq!(detail(ok, "sql"), "SELECT count(*) FROM events");
    let input: Value = serde_json::from_str(detail(ok, "input")).unwrap();
    assert_eq!(input["subject"]["id"], "ann");
    let result: Value = serde_json::from_str(detail(ok, "result")).unwrap();
    assert_eq!(result["allow"], true);
    let filters: Value = serde_json::from_str(detail(ok, "row_filters")).unwrap();
    assert!(
        filters["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["column"] == "tenant" && f["values"] == json!(["acme"])),
        "{filters}"
    );
    let masks: Value = serde_json::from_str(detail(ok, "masks")).unwrap();
    assert_eq!(masks["events"]["actor.ip"]["kind"], "null");
    let bad_sql = by_id[ann[1].2.as_deref().unwrap()];
    assert_eq!(
        (bad_sql["outcome"].as_str(), detail(bad_sql, "code")),
        (Some("error"), "bad_sql")
    );
    let denied = by_id[ann[2].2.as_deref().unwrap()];
    assert_eq!(denied["outcome"], "denied");
    assert!(detail(denied, "reasons").contains("access_log"), "{denied}");
    let anon = by_id[results[3].1[0].2.as_deref().unwrap()];
    assert_eq!(
        (anon["actor"]["id"].as_str(), anon["tenant"].as_str()),
        (Some("anonymous"), Some("-"))
    );
    assert_eq!(detail(anon, "code"), "unauthenticated");
    let glass = by_id[results[4].1[0].2.as_deref().unwrap()];
    assert_eq!(detail(glass, "justification"), "INC-42");
    assert!(detail(glass, "flags").contains("break_glass"));

    // One completion per query that ran, naming its decision and the segments it read.
    let done: BTreeMap<String, &Value> = completions
        .iter()
        .map(|c| (detail(c, "decision_id").to_string(), *c))
        .collect();
    assert_eq!(done.len(), completions.len(), "one completion each");
    assert_eq!(
        done.keys().cloned().collect::<BTreeSet<_>>(),
        allowed.keys().cloned().collect::<BTreeSet<_>>()
    );
    for (id, code) in &allowed {
        let c = done[id];
        assert_eq!(detail(c, "code"), code, "{c}");
        if code == "ok" {
            assert_eq!(c["outcome"], "success");
            let segs: Vec<Value> = serde_json::from_str(detail(c, "segments")).unwrap();
            if c["actor"]["id"] != "aud"
                || !detail(by_id[id.as_str()], "sql").contains("access_log")
            {
                assert!(!segs.is_empty(), "{c}");
                assert_eq!(segs[0]["manifest_sha256"].as_str().unwrap().len(), 64);
            }
            assert!(detail(c, "bytes").parse::<u64>().unwrap() > 0);
        } else {
            assert_eq!(c["outcome"], "error");
        }
    }
    let big = done[results[4].1[0].2.as_deref().unwrap()];
    assert_eq!(detail(big, "rows"), "40");

    // Alerts: each rule at its threshold, none below (ann's 2 denials, the 2 bad tokens).
    let alerts = records(&broker, ALERTS, 6);
    let mut fired: Vec<(String, String)> = alerts
        .iter()
        .map(|(_, _, _, a)| {
            cairn_format::AuditEvent::from_json(a.to_string().as_bytes()).unwrap();
            (
                a["action"].as_str().unwrap().to_string(),
                a["actor"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            ("alert.break_glass", "bob"),
            ("alert.large_result", "bob"),
            ("alert.many_tenants", "aud"),
            ("alert.many_tenants", "aud"),
            ("alert.many_tenants", "bob"),
            ("alert.repeated_denials", "nob"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let repeated = alerts
        .iter()
        .find(|a| a.3["action"] == "alert.repeated_denials")
        .unwrap();
    let ids: Vec<String> = serde_json::from_str(detail(&repeated.3, "decision_ids")).unwrap();
    let nob: Vec<String> = results[2].1.iter().map(|g| g.2.clone().unwrap()).collect();
    assert_eq!(ids, nob);

    assert_eq!(
        metric(
            &server,
            "cairn_query_decision_log_records_total{kind=\"decision\"}"
        ),
        20.0
    );
}

#[test]
fn a_broker_outage_refuses_queries_reads_nothing_and_recovers_on_its_own() {
    let mut broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let (keys, store, _) = vault(dir.path(), 20);
    let server = serve(dir.path(), &store, &keys, &broker, "");
    let count = json!({"sql": "SELECT count(*) FROM events"});
    let (s, _, first) = ask(&server, "key-analyst-acme", &count);
    assert_eq!(s, 200);
    let read_before = metric(&server, "cairn_query_segments_read_total");
    assert!(read_before > 0.0);

    broker.kill();
    for _ in 0..3 {
        let (s, code, id) = ask(&server, "key-analyst-acme", &count);
        assert_eq!((s, code.as_str()), (503, "decision_log_unavailable"));
        assert_eq!(id, None, "an unrecorded request has no decision id to cite");
    }
    let start = Instant::now();
    while server.request("GET", "/readyz", &[], b"").0 != 503 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "/readyz stayed 200"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing was read for the refused requests.
    assert_eq!(
        metric(&server, "cairn_query_segments_read_total"),
        read_before
    );
    assert!(metric(&server, "cairn_query_decision_log_unavailable_total") >= 3.0);
    assert_eq!(metric(&server, "cairn_query_decision_log_ready"), 0.0);

    broker.restart();
    // Ready again on its own. While the restarted broker settles, a request may still be
    // refused (its record not acknowledged in time); it reads nothing either way.
    let start = Instant::now();
    let again = loop {
        let (s, code, id) = ask(&server, "key-analyst-acme", &count);
        if s == 200 {
            break id.unwrap();
        }
        assert_eq!((s, code.as_str()), (503, "decision_log_unavailable"));
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never recovered after the broker came back:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(server.request("GET", "/readyz", &[], b"").0, 200);
    let first = first.unwrap();
    let expected: BTreeSet<String> = [first.clone(), again.clone()].into();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (decided, completed) = loop {
        let all = records(&broker, DECISIONS, 4);
        let decided: BTreeSet<String> = all
            .iter()
            .filter(|r| r.3["action"] == "query.execute")
            .map(|r| r.3["event_id"].as_str().unwrap().to_string())
            .collect();
        let completed: BTreeSet<String> = all
            .iter()
            .filter(|r| r.3["action"] == "query.complete")
            .map(|r| detail(&r.3, "decision_id").to_string())
            .collect();
        if completed.len() >= 2 || Instant::now() > deadline {
            break (decided, completed);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(decided.is_superset(&expected), "{decided:?}");
    // Every query that read data has its completion, including the one queued when the
    // broker died (retried until acknowledged). A refused request's record may exist (written,
    // its acknowledgement lost) but never a completion: nothing was read for it.
    assert_eq!(completed, expected);
}

#[test]
fn the_decisions_topic_is_sealed_verified_and_served_as_the_access_log() {
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let (keys, store, evs) = vault(dir.path(), 20);
    let svc = keygen(&dir.path().join("service"));
    let server = serve(
        dir.path(),
        &store,
        &keys,
        &broker,
        &format!("signing_key = \"{}\"\n", svc.key),
    );
    let mut ann_ids = Vec::new();
    for sql in [
        "SELECT count(*) FROM events",
        "SELECT actor.ip, details FROM events",
    ] {
        let (s, _, id) = ask(&server, "key-analyst-acme", &json!({ "sql": sql }));
        assert_eq!(s, 200);
        ann_ids.push(id.unwrap());
    }

    // Signed result: verifies offline; any edit of the rows or a foreign key fails.
    let (s, body) = server.query_body(
        "key-analyst-acme",
        &json!({"sql": "SELECT event_id, action FROM events ORDER BY event_id", "sign": true}),
    );
    assert_eq!(s, 200, "{body}");
    let signed = dir.path().join("signed.json");
    std::fs::write(&signed, body.to_string()).unwrap();
    // cairn verify-result, and the independent checker written from FORMAT.md §10, must
    // reach the same verdict.
    let check = |file: &Path, key: &str| {
        let out = cairn()
            .args(["verify-result", file.to_str().unwrap(), "--pubkey", key])
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        let independent = std::process::Command::new("python3")
            .arg(cairn_tests::cli::repo().join("tests/independent_result_verifier.py"))
            .args([file.to_str().unwrap(), key])
            .output()
            .unwrap();
        assert_eq!(
            independent.status.code(),
            Some(code),
            "the independent checker disagrees: {}{}",
            String::from_utf8_lossy(&independent.stdout),
            String::from_utf8_lossy(&independent.stderr)
        );
        (code, String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, out) = check(&signed, &svc.public);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SIGNED RESULT INTACT"), "{out}");
    let mut edited = body.clone();
    edited["rows"][0]["action"] = json!("tampered");
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, edited.to_string()).unwrap();
    let (code, out) = check(&forged, &svc.public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rows: SHA-256"), "{out}");
    let (code, out) = check(&signed, &keys.public);
    assert_eq!(code, 1, "a foreign key: {out}");
    let (s, v) = server.query_body(
        "key-analyst-acme",
        &json!({"sql": "SELECT 1 FROM events", "sign": true, "format": "csv"}),
    );
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_request")));

    // cairn ingest seals the decisions topic like any other.
    // ann: 3 queries (decision and completion each) and the refused csv one (decision only).
    let recorded = records(&broker, DECISIONS, 7).len() as u64;
    assert_eq!(recorded, 7);
    let ingest = Ingester::builder(&broker, store.to_str().unwrap(), &keys.key)
        .topics(DECISIONS)
        .start();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, report) = verify(store.to_str().unwrap(), &[&keys.public]);
        if report["events_checked"].as_u64() >= Some(evs.len() as u64 + recorded) {
            break;
        }
        assert!(Instant::now() < deadline, "not sealed: {report:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
    ingest.terminate();
    let (code, report) = verify(store.to_str().unwrap(), &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");

    // The auditor asks who read tenant acme's data; an analyst may not read the log.
    let who = "SELECT actor.id AS who, count(*) AS n FROM access_log \
               WHERE tenant = 'acme' AND action = 'query.execute' AND outcome = 'success' \
               GROUP BY 1 ORDER BY 1";
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let (s, v) = server.query("key-auditor", who);
        assert_eq!(s, 200, "{v}");
        if v["rows"].as_array().is_some_and(|r| !r.is_empty()) {
            break v["rows"].clone();
        }
        assert!(Instant::now() < deadline, "access_log never served: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(rows, json!([{"who": "ann", "n": 3}]));
    let (s, v) = server.query(
        "key-auditor",
        "SELECT details['decision_id'] AS id FROM access_log \
         WHERE action = 'query.complete' AND actor.id = 'ann' ORDER BY 1",
    );
    assert_eq!(s, 200, "{v}");
    let completed: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in &ann_ids {
        assert!(
            completed.contains(&id.as_str()),
            "{id} not in {completed:?}"
        );
    }
    let (s, v) = server.query("key-analyst-acme", "SELECT count(*) FROM access_log");
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("denied")));

    // A tampered decision is caught like any event.
    let file = objects(&store)
        .into_iter()
        .find(|o| o.contains(DECISIONS) && o.ends_with(".parquet"))
        .expect("a sealed decisions segment");
    let path = store.join(&file);
    make_writable(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let (code, report) = verify(store.to_str().unwrap(), &[&keys.public]);
    assert_eq!(code, 1, "{report:#}");
}

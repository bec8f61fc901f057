use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::*;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn input(roles: &[&str], tables: &[&str]) -> Input {
    Input {
        subject: Subject {
            id: "alice".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            tenant: Some("acme".into()),
            auth: "oidc".into(),
        },
        tables: tables
            .iter()
            .map(|t| {
                (
                    t.to_string(),
                    TableAccess {
                        columns: vec!["action".into()],
                    },
                )
            })
            .collect(),
        time_range: None,
        request: RequestContext {
            now_us: 1_790_000_000_000_000,
            client: "127.0.0.1".into(),
            justification: String::new(),
        },
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn the_shipped_policy_masks_an_analysts_sensitive_rows() {
    let engine = RegorusEngine::load(&shipped(), DEFAULT_ENTRYPOINT, SECOND).unwrap();
    let out = decide(&engine, &input(&["analyst"], &["events"]), SECOND).await;
    assert_eq!(out.error, None);
    assert!(out.decision.allow, "{:?}", out.decision);
    let grant = &out.decision.tables["events"];
    assert_eq!(grant.row_filters[0].column, "tenant");
    assert_eq!(grant.row_filters[0].values, vec![json!("acme")]);
    assert_eq!(grant.masks["actor.ip"].kind, MaskKind::Null);
    assert!(out.revision.starts_with("sha256:") && out.revision.len() == 71);
    assert_eq!(out.engine, "regorus");
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const ALLOW_ALL: &str = r#"package cairn.authz
decision := {"allow": true, "reasons": ["v1"], "flags": [], "limits": {},
  "tables": {t: {"row_filters": [], "masks": {}} | some t, _ in input.tables}}
"#;

#[test]
fn a_changed_policy_is_reloaded_and_a_broken_edit_keeps_the_old_revision() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "authz.rego", ALLOW_ALL);
    write(
        dir.path(),
        "authz_test.rego",
        "this is not rego and is never loaded",
    );
    let engine = RegorusEngine::load(dir.path(), DEFAULT_ENTRYPOINT, SECOND).unwrap();
    let first = engine.revision();
    assert!(!engine.reload_if_changed().unwrap(), "nothing changed");

    write(dir.path(), "authz.rego", &ALLOW_ALL.replace("v1", "v2"));
    assert!(engine.reload_if_changed().unwrap());
    let second = engine.revision();
    assert_ne!(first, second);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(decide(&engine, &input(&[], &["events"]), SECOND));
    assert_eq!(out.decision.reasons, vec!["v2"]);
    assert_eq!(out.revision, second);

    write(
        dir.path(),
        "authz.rego",
        "package cairn.authz\ndecision := {",
    );
    assert!(matches!(
        engine.reload_if_changed(),
        Err(PolicyError::Load { .. })
    ));
    assert_eq!(
        engine.revision(),
        second,
        "a broken edit must not replace a working policy"
    );
    assert_eq!(engine.reload_failures(), 1);
}

#[test]
fn a_policy_without_the_entrypoint_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "other.rego", "package other\nx := 1\n");
    let err = RegorusEngine::load(dir.path(), DEFAULT_ENTRYPOINT, SECOND)
        .err()
        .unwrap();
    assert!(matches!(err, PolicyError::Load { .. }), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = RegorusEngine::load(empty.path(), DEFAULT_ENTRYPOINT, SECOND)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no .rego files"), "{err}");
}

async fn decide_with(rego: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "authz.rego", rego);
    let engine = RegorusEngine::load(dir.path(), DEFAULT_ENTRYPOINT, SECOND).unwrap();
    decide(&engine, &input(&["analyst"], &["events"]), SECOND).await
}

#[tokio::test]
async fn every_way_a_policy_can_fail_is_a_denial_with_the_reason() {
    // Undefined: the rule exists but nothing matches this input.
    let out = decide_with("package cairn.authz\ndecision := {} if input.nobody\n").await;
    assert!(!out.decision.allow);
    assert!(
        out.error.as_deref().unwrap().contains("undefined"),
        "{:?}",
        out.error
    );

    // A misspelt key is not ignored.
    let out = decide_with(&ALLOW_ALL.replace("\"masks\"", "\"mask\"")).await;
    assert!(!out.decision.allow);
    assert!(
        out.error.as_deref().unwrap().contains("not a decision"),
        "{:?}",
        out.error
    );

    // Allowed, but without a grant for the table read: no unfiltered read.
    let out = decide_with(
        "package cairn.authz\ndecision := {\"allow\": true, \"reasons\": [], \"flags\": [], \"limits\": {}, \"tables\": {}}\n",
    )
    .await;
    assert!(!out.decision.allow);
    assert!(
        out.error
            .as_deref()
            .unwrap()
            .contains("no grant for table `events`"),
        "{:?}",
        out.error
    );

    // An unknown filter operator, a replace mask without a value, a filter without values.
    for bad in [
        r#"{"column": "tenant", "op": "like", "values": ["a%"]}"#,
        r#"{"column": "tenant", "op": "eq", "values": []}"#,
        r#"{"column": "tenant", "op": "eq", "values": [{"a": 1}]}"#,
    ] {
        let rego = ALLOW_ALL.replace("\"row_filters\": []", &format!("\"row_filters\": [{bad}]"));
        let out = decide_with(&rego).await;
        assert!(!out.decision.allow, "{bad}");
        assert!(out.error.is_some(), "{bad}");
    }
    let rego = ALLOW_ALL.replace(
        "\"masks\": {}",
        "\"masks\": {\"actor.ip\": {\"kind\": \"replace\"}}",
    );
    let out = decide_with(&rego).await;
    assert!(
        out.error.as_deref().unwrap().contains("has no value"),
        "{:?}",
        out.error
    );

    // A builtin error at evaluation time.
    let out =
        decide_with("package cairn.authz\ndecision := x if { input.subject\n x := 1 / 0 }\n").await;
    assert!(!out.decision.allow);
    assert!(out.error.is_some());
}

/// An engine that never answers in time (a stand-in for a policy stuck on a slow builtin).
struct Slow;

impl Engine for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn revision(&self) -> String {
        "sha256:slow".into()
    }
    fn evaluate<'a>(&'a self, _: &'a Input) -> BoxFuture<'a, Result<Evaluated, PolicyError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Evaluated {
                result: json!({"allow": true}),
                revision: self.revision(),
            })
        })
    }
}

#[tokio::test]
async fn a_policy_that_does_not_answer_in_time_denies() {
    let out = decide(
        &Slow,
        &input(&["auditor"], &["events"]),
        Duration::from_millis(50),
    )
    .await;
    assert!(!out.decision.allow);
    assert!(
        out.error
            .as_deref()
            .unwrap()
            .contains("did not decide within")
    );
    assert!(out.elapsed < Duration::from_secs(5));
    assert_eq!(out.revision, "sha256:slow");
}

#[tokio::test]
async fn an_expensive_policy_is_stopped_by_the_regorus_timer() {
    let dir = tempfile::tempdir().unwrap();
    // Cheap for the load-time probe (empty input), expensive for a real input.
    write(
        dir.path(),
        "authz.rego",
        "package cairn.authz\ndecision := {\"n\": n} if { input.subject\n n := count([x | some x in numbers.range(1, 4000); some y in numbers.range(1, 4000)]) }\n",
    );
    let engine =
        RegorusEngine::load(dir.path(), DEFAULT_ENTRYPOINT, Duration::from_millis(100)).unwrap();
    let start = std::time::Instant::now();
    let out = decide(
        &engine,
        &input(&["analyst"], &["events"]),
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.decision.allow);
    assert!(out.error.is_some());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn revisions_frame_file_names_and_contents() {
    let a = revision_of([("a.rego", b"xy".as_slice()), ("b.rego", b"z".as_slice())]);
    let b = revision_of([("a.rego", b"x".as_slice()), ("b.rego", b"yz".as_slice())]);
    assert_ne!(a, b);
}

//! The shipped policies (policies/) decide every case of policies/cases.json identically
//! under the three engines: the real OPA (`opa test`), regorus, and opa-wasm running the
//! bundle that `opa build -t wasm` produces in this run. regorus has accepted Rego that OPA
//! rejects, so agreement — not each engine alone — is the test.

use std::path::PathBuf;
use std::time::Duration;

use cairn_policy::{DEFAULT_ENTRYPOINT, Engine, Input, RegorusEngine, WasmEngine, decide};
use cairn_tests::{cli::repo, opa};
use serde_json::Value;

fn policies() -> PathBuf {
    repo().join("policies")
}

struct Case {
    name: String,
    input: Input,
    expected: Value,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(policies().join("cases.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases: Vec<Case> = doc["cairn_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            // Every case is a well-formed Input, except the one that omits now_us (OPA and
            // the engines see it through raw JSON below).
            input: serde_json::from_value(c["input"].clone()).unwrap_or_else(|_| placeholder(c)),
            expected: c["expected"].clone(),
        })
        .collect();
    assert!(cases.len() >= 20, "cases.json has {} cases", cases.len());
    cases
}

/// Cases whose input is not a valid `Input` are checked by `opa test` only: cairn never
/// sends such an input (its type forbids it).
fn placeholder(c: &Value) -> Input {
    let input = serde_json::json!({
        "subject": {"id": format!("<{}: not sendable by cairn>", c["name"].as_str().unwrap()), "roles": [], "tenant": null, "auth": "oidc"},
        "tables": {},
        "request": {"now_us": 0, "client": "", "justification": ""}
    });
    serde_json::from_value(input).unwrap()
}

fn sendable(c: &Case) -> bool {
    !c.input.subject.id.starts_with('<')
}

#[test]
fn opa_test_passes_on_the_shipped_policies() {
    let out = opa::run(&policies(), &["test", "-v", "."]);
    assert!(out.contains("PASS: 1/1"), "{out}");
    // And the policies are strict-clean.
    opa::run(&policies(), &["check", "--strict", "."]);
}

async fn check(engine: &dyn Engine, cases: &[Case]) -> Vec<String> {
    let mut wrong = Vec::new();
    for c in cases.iter().filter(|c| sendable(c)) {
        let out = decide(engine, &c.input, Duration::from_secs(5)).await;
        if let Some(e) = &out.error {
            wrong.push(format!("{}: {}: error {e}", engine.name(), c.name));
            continue;
        }
        let got = serde_json::to_value(&out.decision).unwrap();
        if got != c.expected {
            wrong.push(format!(
                "{}: {}:\n  got      {got}\n  expected {}",
                engine.name(),
                c.name,
                c.expected
            ));
        }
        // The raw result is exactly the decision (no field the contract would drop).
        if out.result.as_ref() != Some(&c.expected) {
            wrong.push(format!(
                "{}: {}: raw result {:?}",
                engine.name(),
                c.name,
                out.result
            ));
        }
    }
    wrong
}

#[tokio::test]
async fn regorus_and_opa_wasm_decide_every_case_as_opa_does() {
    let cases = cases();
    assert!(cases.iter().filter(|c| sendable(c)).count() >= 20);

    // OPA itself decides every case as expected (opa eval, case by case, not only opa test).
    let dir = tempfile::tempdir().unwrap();
    for c in cases.iter().filter(|c| sendable(c)) {
        let input = dir.path().join("input.json");
        std::fs::write(&input, serde_json::to_vec(&c.input).unwrap()).unwrap();
        let out = opa::run(
            &policies(),
            &[
                "eval",
                "-f",
                "json",
                "-d",
                "authz.rego",
                "-i",
                input.to_str().unwrap(),
                "data.cairn.authz.decision",
            ],
        );
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            out["result"][0]["expressions"][0]["value"], c.expected,
            "opa eval: {}",
            c.name
        );
    }

    let regorus =
        RegorusEngine::load(&policies(), DEFAULT_ENTRYPOINT, Duration::from_secs(1)).unwrap();
    let bundle = opa::build_wasm(&policies(), DEFAULT_ENTRYPOINT, dir.path());
    let wasm = WasmEngine::load(&bundle, DEFAULT_ENTRYPOINT).await.unwrap();

    let mut wrong = check(&regorus, &cases).await;
    wrong.extend(check(&wasm, &cases).await);
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_ne!(
        regorus.revision(),
        wasm.revision(),
        "revisions name what was loaded"
    );
}

#[tokio::test]
async fn a_bundle_without_the_entrypoint_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // A bundle of another policy, whose only entrypoint is other/x.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("other.rego"), "package other\n\nx := 1\n").unwrap();
    let bundle = opa::build_wasm(&other, "other/x", dir.path());
    let err = WasmEngine::load(&bundle, DEFAULT_ENTRYPOINT)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no entrypoint cairn/authz/decision") && err.contains("other/x"),
        "{err}"
    );
    let err = WasmEngine::load(&dir.path().join("missing.tar.gz"), DEFAULT_ENTRYPOINT)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.tar.gz"), "{err}");
}

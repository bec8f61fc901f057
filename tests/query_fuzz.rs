//! The OpenAPI document (docs/openapi.yaml) fuzzed against the running service with
//! schemathesis (PyPI): no generated request — valid, malformed or unauthenticated — gets a
//! 5xx, and every response conforms to the document (status codes, content types, schemas).

use std::process::Command;

use cairn_tests::cli::repo;
use cairn_tests::serve::{KEYS, Server, vault};

fn fuzz(server: &Server, key: &str) {
    let out = Command::new("schemathesis")
        .args(["run", repo().join("docs/openapi.yaml").to_str().unwrap()])
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["-H", &format!("X-Api-Key: {key}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args([
            "--max-examples",
            "40",
            "--seed",
            "20261126",
            "--workers",
            "1",
        ])
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            "--request-timeout",
            "30",
        ])
        .output()
        .expect("running schemathesis (tests/requirements.txt installs it)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n--- server log ---\n{}",
        server.log_text()
    );
    assert!(
        text.contains("/v1/query"),
        "schemathesis did not test /v1/query:\n{text}"
    );
}

#[test]
fn the_openapi_document_holds_under_fuzzing_and_no_request_is_a_server_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (keys, store, _) = vault(tmp.path(), 10);
    let server = Server::start(tmp.path(), &store, &keys, "");
    let auditor = KEYS.iter().find(|k| k.name == "aud").unwrap().key;
    let analyst = KEYS.iter().find(|k| k.name == "ann").unwrap().key;
    fuzz(&server, auditor);
    fuzz(&server, analyst);
    let metrics = String::from_utf8(server.request("GET", "/metrics", &[], b"").2).unwrap();
    assert!(!metrics.contains("code=\"internal\""), "{metrics}");
}

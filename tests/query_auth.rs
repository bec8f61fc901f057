//! OIDC against a real provider process: tokens obtained from its token endpoint over HTTP
//! are accepted with the roles and tenant they carry, and every forged, misdirected or stale
//! token an attacker could present is 401.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use cairn_tests::oidc::Provider;
use cairn_tests::serve::{Server, vault};
use serde_json::{Value, json};

fn bearer(server: &Server, token: &str, sql: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, body) = server.request(
        "POST",
        "/v1/query",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({"sql": sql}).to_string().as_bytes(),
    );
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), msg].concat());
    Sha256::digest([opad.as_slice(), inner.as_slice()].concat()).to_vec()
}

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

#[test]
fn oidc_tokens_carry_roles_and_tenant_and_every_forgery_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (keys, store, evs) = vault(tmp.path(), 20);
    let idp = Provider::start();
    let server = Server::start(
        tmp.path(),
        &store,
        &keys,
        &format!(
            "[query.oidc]\nissuer = \"{}\"\naudience = [\"cairn\"]\nalgorithms = [\"RS256\"]\nleeway_secs = 5\n",
            idp.issuer
        ),
    );
    let sql = "SELECT tenant, count(*) AS n FROM events GROUP BY tenant";
    let good = [
        ("sub", "ann@acme"),
        ("roles", "analyst"),
        ("tenant", "acme"),
        ("aud", "cairn"),
        ("exp_in", "300"),
    ];

    // A real token: the roles and tenant claims drive the policy.
    let token = idp.token(&good);
    let (status, body) = bearer(&server, &token, sql);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);
    assert_eq!(body["rows"][0]["tenant"], "acme");
    let (status, body) = bearer(
        &server,
        &idp.token(&[("sub", "a"), ("roles", "auditor"), ("aud", "cairn")]),
        "SELECT count(*) AS n FROM events",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["n"], evs.len());

    let header = part(&token, 0);
    let payload = part(&token, 1);
    let kid = header["kid"].as_str().unwrap().to_string();
    let enc = |v: &Value| B64.encode(v.to_string());

    // alg: none, with the real payload and no signature.
    let none = format!(
        "{}.{}.",
        enc(&json!({"alg": "none", "typ": "JWT"})),
        enc(&payload)
    );
    // HS256 "signed" with the provider's public key (the algorithm-confusion attack).
    let jwk = idp.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let hs_header = enc(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
    let signing_input = format!("{hs_header}.{}", enc(&payload));
    let mut confused = Vec::new();
    for key_bytes in [
        jwk.to_string().into_bytes(),
        B64.decode(jwk["n"].as_str().unwrap()).unwrap(),
    ] {
        confused.push(format!(
            "{signing_input}.{}",
            B64.encode(hmac_sha256(&key_bytes, signing_input.as_bytes()))
        ));
    }
    // The real signature over a payload edited to another tenant and role.
    let mut edited = payload.clone();
    edited["tenant"] = json!("globex");
    edited["roles"] = json!(["auditor"]);
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], enc(&edited), parts[2]);

    let mut attacks: Vec<(&str, String)> = vec![
        ("alg none", none),
        ("tampered payload", tampered),
        (
            "wrong issuer",
            idp.token(&[
                ("iss", "http://127.0.0.1:1"),
                ("aud", "cairn"),
                ("roles", "auditor"),
            ]),
        ),
        (
            "wrong audience",
            idp.token(&[("aud", "someone-else"), ("roles", "auditor")]),
        ),
        (
            "expired",
            idp.token(&[("aud", "cairn"), ("roles", "auditor"), ("exp_in", "-120")]),
        ),
        (
            "not yet valid",
            idp.token(&[("aud", "cairn"), ("roles", "auditor"), ("nbf_in", "3600")]),
        ),
        (
            "unknown kid",
            idp.token(&[("aud", "cairn"), ("roles", "auditor"), ("kid", "not-a-key")]),
        ),
        ("garbage", "abc.def.ghi".to_string()),
    ];
    for c in confused {
        attacks.push(("HS256 signed with the public key", c));
    }
    for (what, token) in &attacks {
        let (status, body) = bearer(&server, token, "SELECT count(*) AS n FROM events");
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{what}");
    }
    // A token from another provider (its own keys, its own issuer) is refused too.
    let other = Provider::start();
    let (status, _) = bearer(
        &server,
        &other.token(&[("aud", "cairn"), ("roles", "auditor"), ("iss", &idp.issuer)]),
        "SELECT 1 FROM events",
    );
    assert_eq!(status, 401, "a key the issuer never published");
    // And nothing about the refusals broke the good path.
    let (status, _) = bearer(&server, &idp.token(&good), sql);
    assert_eq!(status, 200);
}

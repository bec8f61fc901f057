//! A real OpenID Connect provider process on 127.0.0.1 (oauth2-mock-server, installed by
//! scripts/ensure-oidc-provider.sh; tests/services/oidc_provider.mjs), and tokens from its
//! token endpoint over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::cli::repo;

pub struct Provider {
    pub issuer: String,
    child: Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn entry() -> PathBuf {
    let p = std::env::var_os("CAIRN_OIDC_PROVIDER").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap())
            .join(".cache/cairn/tools/oauth2-mock-server-8.2.3/node_modules/oauth2-mock-server/dist/index.mjs")
    });
    assert!(
        p.is_file(),
        "oauth2-mock-server not found at {} (scripts/test.sh installs it with scripts/ensure-oidc-provider.sh)",
        p.display()
    );
    p
}

impl Provider {
    /// Starts the provider on a free port; panics (the test fails) if it does not come up.
    pub fn start() -> Provider {
        let mut child = Command::new("node")
            .arg(repo().join("tests/services/oidc_provider.mjs"))
            .arg("0")
            .env("CAIRN_OIDC_PROVIDER", entry())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node (Node 20 is required)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let issuer = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("OIDC provider did not start: {line:?}"))
            .to_string();
        Provider { issuer, child }
    }

    /// A token from the token endpoint (client_credentials), shaped by `fields`
    /// (sub, roles, tenant, aud, iss, exp_in, nbf_in, kid; see oidc_provider.mjs).
    pub fn token(&self, fields: &[(&str, &str)]) -> String {
        let mut body = String::from("grant_type=client_credentials");
        for (k, v) in fields {
            body.push_str(&format!(
                "&{k}={}",
                v.replace(',', "%2C")
                    .replace(':', "%3A")
                    .replace('/', "%2F")
            ));
        }
        let addr = self.issuer.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /token HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let json = &out[out.find("\r\n\r\n").unwrap() + 4..];
        let json = json.find('{').map(|i| &json[i..]).unwrap_or(json);
        let end = json.rfind('}').map(|i| &json[..=i]).unwrap_or(json);
        let v: serde_json::Value =
            serde_json::from_str(end).unwrap_or_else(|e| panic!("token response {out:?}: {e}"));
        v["access_token"].as_str().unwrap().to_string()
    }

    /// The provider's JWKS (for attacks that misuse its public key).
    pub fn jwks(&self) -> serde_json::Value {
        let addr = self.issuer.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /jwks HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        let body = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
        serde_json::from_str(body).unwrap()
    }
}

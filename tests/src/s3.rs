//! A real S3 server with Object Lock (moto_server) on 127.0.0.1.

use std::process::Command;

use crate::cli::{cairn, verify_env};

/// A real S3 server (moto_server, which enforces Object Lock) on 127.0.0.1, stopped on drop.
/// Fails the test when it cannot start: `scripts/test.sh` installs it.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    pub fn start() -> S3Server {
        let port = free_port();
        // `python3 -m moto.server` is moto_server without depending on PATH shims.
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "moto_server must be installed (scripts/test.sh installs tests/requirements.txt)",
            );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Environment for cairn and boto3 to talk to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// `cairn args…` against this server: (exit code, stdout, stderr).
    pub fn cairn(&self, args: &[&str]) -> (i32, String, String) {
        let out = cairn().args(args).envs(self.env()).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `cairn verify --json` of `store` on this server: (exit code, report).
    pub fn verify(&self, store: &str, pubkeys: &[&str]) -> (i32, serde_json::Value) {
        verify_env(store, pubkeys, &self.env())
    }

    /// tests/services/s3_admin.py (boto3): (exit code, stdout).
    pub fn admin(&self, args: &[&str]) -> (i32, String) {
        let script = crate::cli::repo().join("tests/services/s3_admin.py");
        let out = Command::new("python3")
            .arg(script)
            .args(args)
            .envs(self.env())
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        assert!(
            code == 0 || code == 3,
            "s3_admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (code, String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

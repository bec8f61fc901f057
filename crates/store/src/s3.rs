//! S3 with Object Lock.
//!
//! Data goes through `object_store` (conditional `PUT` with `If-None-Match: *`, versioned
//! `GET`, listing). The calls object_store does not offer — reading the bucket's Object Lock
//! configuration, per-object retention, reading an object version's lock, listing versions —
//! are plain S3 REST requests signed with object_store's own SigV4 [`AwsAuthorizer`].

use std::ops::Range;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::TryStreamExt;
use http::{HeaderName, HeaderValue, Method};
use md5::Digest;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use serde::Deserialize;

use crate::{BackendKind, BoxError, Created, ObjectInfo, ObjectVersion, StoreError};

pub struct S3Store {
    os: AmazonS3,
    bucket: String,
    /// `""` or `"some/prefix/"`.
    prefix: String,
    region: String,
    bucket_url: String,
    http: reqwest::Client,
    retention_days: Option<u32>,
}

fn safe_key(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// A failed request of our own, classified for retrying.
type Failed = (BackendKind, BoxError);

/// How an HTTP status from S3 bears on retrying.
fn status_kind(status: reqwest::StatusCode) -> BackendKind {
    match status.as_u16() {
        401 | 403 => BackendKind::Unauthorized,
        408 => BackendKind::Timeout,
        429 | 500..=599 => BackendKind::Unavailable,
        _ => BackendKind::Misconfigured, // NoSuchBucket, a malformed request
    }
}

fn reqwest_failed(e: reqwest::Error) -> Failed {
    let kind = if e.is_timeout() {
        BackendKind::Timeout
    } else {
        BackendKind::Unavailable
    };
    (kind, Box::new(e))
}

/// An S3 `<Error>` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A non-success response: its status and what S3 said.
fn http_failed(status: reqwest::StatusCode, text: &str) -> Failed {
    let body: S3ErrorBody = quick_xml::de::from_str(text).unwrap_or_default();
    let what = if body.code.is_empty() && body.message.is_empty() {
        text.chars().take(200).collect()
    } else {
        format!("{} {}", body.code, body.message)
    };
    (status_kind(status), format!("HTTP {status}: {what}").into())
}

impl S3Store {
    /// `rest` is what follows `s3://`: `bucket[/prefix]`. A writer (`check_lock`) needs Object
    /// Lock with COMPLIANCE retention: the bucket's default, unless `retention_days` sets one
    /// per object.
    pub async fn open(
        rest: &str,
        retention_days: Option<u32>,
        check_lock: bool,
    ) -> Result<Self, StoreError> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if bucket.is_empty() || !safe_key(bucket) || !safe_key(prefix) {
            return Err(StoreError::InvalidUrl(format!("s3://{rest}")));
        }
        let builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let os = builder.build().map_err(|e| StoreError::Backend {
            op: "configure",
            object: String::new(),
            store: format!("s3://{bucket}"),
            kind: BackendKind::Misconfigured,
            source: Box::new(e),
        })?;
        let bucket_url = match endpoint {
            Some(ep) => format!("{}/{bucket}", ep.trim_end_matches('/')),
            None => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        let store = S3Store {
            os,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            region,
            bucket_url,
            http,
            retention_days,
        };
        if check_lock {
            store.check_object_lock().await?;
        }
        Ok(store)
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn backend(&self, op: &'static str, object: &str, (kind, source): Failed) -> StoreError {
        StoreError::Backend {
            op,
            object: object.to_string(),
            store: self.describe(),
            kind,
            source,
        }
    }

    /// An object_store error, classified.
    fn os_err(&self, op: &'static str, object: &str, e: object_store::Error) -> StoreError {
        use object_store::Error as E;
        let kind = match &e {
            E::NotFound { .. } => {
                return StoreError::NotFound {
                    object: object.to_string(),
                };
            }
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => BackendKind::Unauthorized,
            E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::UnknownConfigurationKey { .. } => BackendKind::Misconfigured,
            _ => BackendKind::Unavailable,
        };
        self.backend(op, object, (kind, Box::new(e)))
    }

    async fn signed(
        &self,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<reqwest::Response, Failed> {
        let cred = self
            .os
            .credentials()
            .get_credential()
            .await
            .map_err(|e| (BackendKind::Unauthorized, Box::new(e) as BoxError))?;
        let misconfigured = |e: BoxError| (BackendKind::Misconfigured, e);
        let mut req: object_store::client::HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(body.clone().into())
            .map_err(|e| misconfigured(Box::new(e)))?;
        for (k, v) in headers {
            req.headers_mut().insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).map_err(|e| misconfigured(Box::new(e)))?,
            );
        }
        AwsAuthorizer::new(&cred, "s3", &self.region).authorize(&mut req, None);
        let mut rb = self.http.request(method, url).body(body);
        for (k, v) in req.headers() {
            if k != http::header::HOST {
                rb = rb.header(k, v);
            }
        }
        rb.send().await.map_err(reqwest_failed)
    }

    /// A signed request whose response must be a success; returns the response's body.
    async fn request_text(
        &self,
        method: Method,
        url: &str,
    ) -> Result<(reqwest::StatusCode, String), Failed> {
        let resp = self.signed(method, url, &[], Bytes::new()).await?;
        let status = resp.status();
        let text = resp.text().await.map_err(reqwest_failed)?;
        Ok((status, text))
    }

    async fn check_object_lock(&self) -> Result<(), StoreError> {
        let op = "read object lock configuration of";
        let url = format!("{}?object-lock", self.bucket_url);
        let (status, text) = self
            .request_text(Method::GET, &url)
            .await
            .map_err(|f| self.backend(op, "", f))?;
        if text.contains("ObjectLockConfigurationNotFound") {
            return Err(StoreError::ObjectLockDisabled {
                bucket: self.bucket.clone(),
            });
        }
        if !status.is_success() {
            return Err(self.backend(op, "", http_failed(status, &text)));
        }
        let config: ObjectLockConfiguration = quick_xml::de::from_str(&text)
            .map_err(|e| self.backend(op, "", (BackendKind::Unavailable, Box::new(e))))?;
        if config.object_lock_enabled.as_deref() != Some("Enabled") {
            return Err(StoreError::ObjectLockDisabled {
                bucket: self.bucket.clone(),
            });
        }
        if self.retention_days.is_none() {
            let mode = config
                .rule
                .and_then(|r| r.default_retention)
                .and_then(|d| d.mode);
            if mode.as_deref() != Some("COMPLIANCE") {
                let found = match mode {
                    None => "it has none".to_string(),
                    Some(m) => format!("its default mode is {m}"),
                };
                return Err(StoreError::NoRetention {
                    bucket: self.bucket.clone(),
                    found,
                });
            }
        }
        Ok(())
    }

    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StoreError> {
        let key = self.key(name);
        // A conditional PUT of our own: object_store cannot send Content-MD5 or the
        // object-lock headers, and S3 requires the former for any write to a bucket with
        // default retention.
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&bytes));
        let mut headers = vec![("if-none-match", "*".to_string()), ("content-md5", md5)];
        if let Some(days) = self.retention_days {
            let until = chrono::Utc::now() + chrono::Duration::days(i64::from(days));
            headers.push(("x-amz-object-lock-mode", "COMPLIANCE".to_string()));
            headers.push((
                "x-amz-object-lock-retain-until-date",
                until.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ));
        }
        let url = format!("{}/{key}", self.bucket_url);
        let resp = self
            .signed(Method::PUT, &url, &headers, bytes.clone())
            .await
            .map_err(|f| self.backend("create", name, f))?;
        let status = resp.status();
        if status == reqwest::StatusCode::PRECONDITION_FAILED
            || status == reqwest::StatusCode::CONFLICT
        {
            let existing = self
                .os
                .get_opts(&Path::from(key.as_str()), GetOptions::default())
                .await
                .map_err(|e| self.os_err("read existing", name, e))?;
            let version = existing.meta.version.clone();
            let existing = existing
                .bytes()
                .await
                .map_err(|e| self.os_err("read existing", name, e))?;
            if existing != bytes {
                return Err(StoreError::Conflict {
                    object: name.to_string(),
                });
            }
            return Ok(Created {
                version_id: version,
                already_existed: true,
            });
        }
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(self.backend("create", name, http_failed(status, &text)));
        }
        let version = resp
            .headers()
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(version) = version else {
            return Err(StoreError::NotLocked {
                object: name.to_string(),
                message: "the bucket returned no version id (Object Lock buckets are versioned; is this really S3 with Object Lock?)".into(),
            });
        };
        self.check_locked(name, &version).await?;
        Ok(Created {
            version_id: Some(version),
            already_existed: false,
        })
    }

    fn object_url(&self, key: &str, query: &[(&str, &str)]) -> String {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.to_string()
                } else {
                    format!("{k}={}", percent(v))
                }
            })
            .collect();
        format!("{}/{key}?{}", self.bucket_url, q.join("&"))
    }

    /// The Object Lock state of `name` at `version`: (mode, retain-until) as S3 reports them
    /// (`none` and an empty date when unset).
    pub async fn lock_state(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(String, String), StoreError> {
        let url = self.object_url(&self.key(name), &[("versionId", version)]);
        let resp = self
            .signed(Method::HEAD, &url, &[], Bytes::new())
            .await
            .map_err(|f| self.backend("read lock of", name, f))?;
        if !resp.status().is_success() {
            return Err(self.backend("read lock of", name, http_failed(resp.status(), "")));
        }
        let h = resp.headers();
        let get = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let mode = get("x-amz-object-lock-mode");
        Ok((
            if mode.is_empty() { "none".into() } else { mode },
            get("x-amz-object-lock-retain-until-date"),
        ))
    }

    /// Confirms that `version` of `name` is under COMPLIANCE retention into the future.
    pub async fn check_locked(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let not_locked = |message: String| StoreError::NotLocked {
            object: name.to_string(),
            message,
        };
        let (mode, until) = self.lock_state(name, version).await?;
        if mode != "COMPLIANCE" {
            return Err(not_locked(format!("lock mode is {mode}")));
        }
        match chrono::DateTime::parse_from_rfc3339(&until) {
            Ok(t) if t > chrono::Utc::now() => Ok(()),
            Ok(t) => Err(not_locked(format!("retention ended at {t}"))),
            Err(_) => Err(not_locked(format!(
                "retain-until date {until:?} unreadable"
            ))),
        }
    }

    /// Reads `name` (all of it, or `range`), at `version` when given.
    pub async fn get(
        &self,
        name: &str,
        version: Option<&str>,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        let opts = GetOptions {
            version: version.map(str::to_string),
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let res = self
            .os
            .get_opts(&Path::from(self.key(name)), opts)
            .await
            .map_err(|e| self.os_err("read", name, e))?;
        res.bytes().await.map_err(|e| self.os_err("read", name, e))
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full = self.key(prefix);
        let list_prefix = Path::from(full.trim_end_matches('/'));
        let metas: Vec<_> = self
            .os
            .list(Some(&list_prefix))
            .try_collect()
            .await
            .map_err(|e| self.os_err("list", prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.to_string();
                let name = key.strip_prefix(&self.prefix)?.to_string();
                name.starts_with(prefix).then_some(ObjectInfo {
                    name,
                    size: m.size,
                    kind: crate::EntryKind::Regular,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// ListObjectVersions under `prefix`: every version and delete marker, oldest first per
    /// name, names ascending.
    pub async fn versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        let op = "list versions of";
        let full = self.key(prefix);
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut url = format!("{}?versions&prefix={}", self.bucket_url, percent(&full));
            if let Some((k, v)) = &marker {
                url.push_str(&format!(
                    "&key-marker={}&version-id-marker={}",
                    percent(k),
                    percent(v)
                ));
            }
            let (status, text) = self
                .request_text(Method::GET, &url)
                .await
                .map_err(|f| self.backend(op, prefix, f))?;
            if !status.is_success() {
                return Err(self.backend(op, prefix, http_failed(status, &text)));
            }
            let page: ListVersionsResult = quick_xml::de::from_str(&text)
                .map_err(|e| self.backend(op, prefix, (BackendKind::Unavailable, Box::new(e))))?;
            let entries = page
                .version
                .into_iter()
                .map(|v| (v, false))
                .chain(page.delete_marker.into_iter().map(|v| (v, true)));
            for (v, delete_marker) in entries {
                let Some(name) = v.key.strip_prefix(&self.prefix) else {
                    continue;
                };
                out.push(ObjectVersion {
                    name: name.to_string(),
                    version_id: v.version_id,
                    delete_marker,
                    last_modified: v.last_modified,
                    size: v.size,
                });
            }
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_version_id_marker,
            ) {
                (true, Some(k), Some(v)) => marker = Some((k, v)),
                _ => break,
            }
        }
        // Oldest first per name. S3 lists each key's versions newest first; the sort is stable,
        // so reversing first keeps versions with equal timestamps oldest first.
        out.reverse();
        out.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then(a.last_modified.cmp(&b.last_modified))
        });
        Ok(out)
    }
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET ?object-lock`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectLockConfiguration {
    object_lock_enabled: Option<String>,
    rule: Option<LockRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LockRule {
    default_retention: Option<DefaultRetention>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DefaultRetention {
    mode: Option<String>,
}

/// `GET ?versions`: `Version` and `DeleteMarker` elements interleaved in key order.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsResult {
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_version_id_marker: Option<String>,
    #[serde(default)]
    version: Vec<VersionEntry>,
    #[serde(default)]
    delete_marker: Vec<VersionEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionEntry {
    key: String,
    version_id: String,
    #[serde(default)]
    last_modified: String,
    #[serde(default)]
    size: u64,
}

#[cfg(test)]
mod tests;

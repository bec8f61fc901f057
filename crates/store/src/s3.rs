//! S3 with Object Lock.
//!
//! Data goes through `object_store` (conditional `PUT` with `If-None-Match: *`, versioned
//! `GET`, listing). The calls object_store does not offer — reading the bucket's Object Lock
//! configuration, per-object retention, reading an object version's lock, listing versions —
//! are plain S3 REST requests signed with object_store's own SigV4 [`AwsAuthorizer`].

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::TryStreamExt;
use http::{HeaderName, HeaderValue, Method};
use md5::Digest;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore};

use crate::{Created, ObjectInfo, ObjectVersion, StoreError, StoreOptions};

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

impl S3Store {
    /// `rest` is what follows `s3://`: `bucket[/prefix]`.
    pub async fn open(rest: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
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
            message: e.to_string(),
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
            retention_days: opts.retention_days,
        };
        if !opts.read_only {
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

    fn backend(&self, op: &'static str, object: &str, message: impl ToString) -> StoreError {
        StoreError::Backend {
            op,
            object: object.to_string(),
            store: self.describe(),
            message: message.to_string(),
        }
    }

    async fn signed(
        &self,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<reqwest::Response, String> {
        let cred = self
            .os
            .credentials()
            .get_credential()
            .await
            .map_err(|e| format!("credentials: {e}"))?;
        let mut req: object_store::client::HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(body.clone().into())
            .map_err(|e| e.to_string())?;
        for (k, v) in headers {
            req.headers_mut().insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).map_err(|e| e.to_string())?,
            );
        }
        AwsAuthorizer::new(&cred, "s3", &self.region).authorize(&mut req, None);
        let mut rb = self.http.request(method, url).body(body);
        for (k, v) in req.headers() {
            if k != http::header::HOST {
                rb = rb.header(k, v);
            }
        }
        rb.send().await.map_err(|e| e.to_string())
    }

    async fn check_object_lock(&self) -> Result<(), StoreError> {
        let url = format!("{}?object-lock", self.bucket_url);
        let resp = self
            .signed(Method::GET, &url, &[], Bytes::new())
            .await
            .map_err(|e| self.backend("read object lock configuration of", "", e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if text.contains("ObjectLockConfigurationNotFound") {
            return Err(StoreError::ObjectLockDisabled {
                bucket: self.bucket.clone(),
            });
        }
        if !status.is_success() {
            return Err(self.backend(
                "read object lock configuration of",
                "",
                format!(
                    "HTTP {status}: {}",
                    xml_tag(&text, "Message").unwrap_or(&text)
                ),
            ));
        }
        if xml_tag(&text, "ObjectLockEnabled") != Some("Enabled") {
            return Err(StoreError::ObjectLockDisabled {
                bucket: self.bucket.clone(),
            });
        }
        if self.retention_days.is_none() {
            let mode = xml_tag(&text, "Mode");
            if mode != Some("COMPLIANCE") {
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
            .map_err(|e| self.backend("create", name, e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::PRECONDITION_FAILED
            || status == reqwest::StatusCode::CONFLICT
        {
            let existing = self
                .os
                .get_opts(&Path::from(key.as_str()), GetOptions::default())
                .await
                .map_err(|e| self.backend("read existing", name, e))?;
            let version = existing.meta.version.clone();
            let existing = existing
                .bytes()
                .await
                .map_err(|e| self.backend("read existing", name, e))?;
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
            let code = xml_tag(&text, "Code").unwrap_or("");
            let msg = xml_tag(&text, "Message").unwrap_or(&text);
            return Err(self.backend("create", name, format!("HTTP {status} {code}: {msg}")));
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

    /// Confirms that `version` of `name` is under COMPLIANCE retention into the future.
    pub async fn check_locked(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let not_locked = |message: String| StoreError::NotLocked {
            object: name.to_string(),
            message,
        };
        let url = self.object_url(&self.key(name), &[("versionId", version)]);
        let resp = self
            .signed(Method::HEAD, &url, &[], Bytes::new())
            .await
            .map_err(|e| self.backend("read lock of", name, e))?;
        if !resp.status().is_success() {
            return Err(self.backend("read lock of", name, format!("HTTP {}", resp.status())));
        }
        let h = resp.headers();
        let mode = h
            .get("x-amz-object-lock-mode")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        if mode != "COMPLIANCE" {
            return Err(not_locked(format!("lock mode is {mode}")));
        }
        let until = h
            .get("x-amz-object-lock-retain-until-date")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match chrono::DateTime::parse_from_rfc3339(until) {
            Ok(t) if t > chrono::Utc::now() => Ok(()),
            Ok(t) => Err(not_locked(format!("retention ended at {t}"))),
            Err(_) => Err(not_locked(format!(
                "retain-until date {until:?} unreadable"
            ))),
        }
    }

    pub async fn get(&self, name: &str, version: Option<&str>) -> Result<Bytes, StoreError> {
        let opts = GetOptions {
            version: version.map(str::to_string),
            ..Default::default()
        };
        let res = self
            .os
            .get_opts(&Path::from(self.key(name)), opts)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => StoreError::NotFound {
                    object: name.to_string(),
                },
                e => self.backend("read", name, e),
            })?;
        res.bytes().await.map_err(|e| self.backend("read", name, e))
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full = self.key(prefix);
        let list_prefix = Path::from(full.trim_end_matches('/'));
        let metas: Vec<_> = self
            .os
            .list(Some(&list_prefix))
            .try_collect()
            .await
            .map_err(|e| self.backend("list", prefix, e))?;
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
            let resp = self
                .signed(Method::GET, &url, &[], Bytes::new())
                .await
                .map_err(|e| self.backend("list versions of", prefix, e))?;
            let status = resp.status();
            let text = resp
                .text()
                .await
                .map_err(|e| self.backend("list versions of", prefix, e))?;
            if !status.is_success() {
                return Err(self.backend(
                    "list versions of",
                    prefix,
                    format!("HTTP {status}: {text}"),
                ));
            }
            let mut page: Vec<ObjectVersion> = Vec::new();
            for (tag, delete_marker) in [("Version", false), ("DeleteMarker", true)] {
                for block in xml_blocks(&text, tag) {
                    let key = unescape(xml_tag(block, "Key").unwrap_or_default());
                    let Some(name) = key.strip_prefix(&self.prefix) else {
                        continue;
                    };
                    page.push(ObjectVersion {
                        name: name.to_string(),
                        version_id: unescape(xml_tag(block, "VersionId").unwrap_or_default()),
                        is_latest: xml_tag(block, "IsLatest") == Some("true"),
                        delete_marker,
                        last_modified: xml_tag(block, "LastModified").unwrap_or_default().into(),
                        size: xml_tag(block, "Size")
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                    });
                }
            }
            out.extend(page);
            if xml_tag(&text, "IsTruncated") == Some("true") {
                let k = xml_tag(&text, "NextKeyMarker").map(unescape);
                let v = xml_tag(&text, "NextVersionIdMarker").map(unescape);
                match (k, v) {
                    (Some(k), Some(v)) => marker = Some((k, v)),
                    _ => break,
                }
            } else {
                break;
            }
        }
        // S3 lists each key's versions newest first; within a key, order by last-modified
        // (stable, so equal timestamps keep S3's order reversed).
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

/// Text of the first `<tag>…</tag>` in `xml`.
fn xml_tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(&xml[start..end])
}

/// Bodies of every `<tag>…</tag>` element in `xml`.
fn xml_blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let Some(j) = body.find(&close) else { break };
        out.push(&body[..j]);
        rest = &body[j + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers_find_tags_and_blocks() {
        let x = "<R><Version><Key>a&amp;b</Key></Version><Version><Key>c</Key></Version><IsTruncated>false</IsTruncated></R>";
        let blocks = xml_blocks(x, "Version");
        assert_eq!(blocks.len(), 2);
        assert_eq!(unescape(xml_tag(blocks[0], "Key").unwrap()), "a&b");
        assert_eq!(xml_tag(x, "IsTruncated"), Some("false"));
        assert_eq!(percent("a/b c"), "a%2Fb%20c");
    }
}

//! OIDC bearer tokens: the issuer's discovery document and JWKS are fetched and cached; an
//! unknown `kid` refetches the JWKS at most once per cooldown. The algorithms come from the
//! configuration only — never from the token — so `alg: none` and an HS256 token signed
//! with the public key are refused before any key is touched; symmetric (`kty: oct`) keys are
//! never used. `iss`, `aud`, `exp` and `nbf` are checked with a small leeway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::QueryError;
use crate::service::{AuthKind, Identity};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The issuer URL, exactly as tokens carry it in `iss`; discovery is
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` values (one must match).
    pub audience: Vec<String>,
    /// Accepted signature algorithms: RS256, RS384, RS512, PS256, PS384, PS512, ES256,
    /// ES384, EdDSA. HMAC algorithms and `none` are not accepted.
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Claim holding the subject.
    pub subject_claim: String,
    /// Claim holding the roles or groups (an array of strings, or one space-separated string).
    pub roles_claim: String,
    /// Claim holding the tenant.
    pub tenant_claim: String,
    /// An unknown `kid` refetches the JWKS at most this often.
    pub jwks_cooldown_secs: u64,
    /// Timeout of each request to the issuer.
    pub timeout_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuer: String::new(),
            audience: Vec::new(),
            algorithms: vec!["RS256".into(), "ES256".into()],
            leeway_secs: 30,
            subject_claim: "sub".into(),
            roles_claim: "roles".into(),
            tenant_claim: "tenant".into(),
            jwks_cooldown_secs: 30,
            timeout_secs: 10,
        }
    }
}

impl OidcConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.issuer.is_empty() {
            return Err("[query.oidc] issuer is required".into());
        }
        if self.audience.is_empty() {
            return Err(
                "[query.oidc] audience is required (the aud your issuer puts in cairn's tokens)"
                    .into(),
            );
        }
        if self.algorithms.is_empty() {
            return Err("[query.oidc] algorithms is empty".into());
        }
        for a in &self.algorithms {
            parse_alg(a)?;
        }
        Ok(())
    }
}

fn parse_alg(a: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = a
        .parse()
        .map_err(|_| format!("[query.oidc] algorithms: unknown algorithm {a:?}"))?;
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(format!(
            "[query.oidc] algorithms: {a} is symmetric; an OIDC verifier accepts asymmetric algorithms only"
        ));
    }
    Ok(alg)
}

struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

pub struct Oidc {
    cfg: OidcConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: Mutex<Keys>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Oidc {
    pub fn new(cfg: OidcConfig) -> Result<Self, String> {
        cfg.check()?;
        let algorithms = cfg
            .algorithms
            .iter()
            .map(|a| parse_alg(a))
            .collect::<Result<_, _>>()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Oidc {
            cfg,
            algorithms,
            http,
            keys: Mutex::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
            }),
        })
    }

    /// Fetches discovery and the JWKS (also at start, so a misconfigured issuer is found
    /// before the first request).
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut keys = self.keys.lock().await;
        self.fetch(&mut keys).await
    }

    async fn fetch(&self, keys: &mut Keys) -> Result<usize, String> {
        keys.fetched = Some(Instant::now());
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get(&url).await?;
        if d.issuer != self.cfg.issuer {
            return Err(format!(
                "{url} names issuer {:?}, not the configured {:?}",
                d.issuer, self.cfg.issuer
            ));
        }
        let set: JwkSet = self.get(&d.jwks_uri).await?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue; // a symmetric key in a JWKS is never a verification key
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                by_kid.insert(kid.clone(), key);
            }
        }
        keys.by_kid = by_kid;
        Ok(keys.by_kid.len())
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        resp.json().await.map_err(|e| format!("{url}: {e}"))
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = keys.by_kid.get(kid) {
            return Some(k.clone());
        }
        let cooled = keys
            .fetched
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.cfg.jwks_cooldown_secs));
        if cooled && let Err(e) = self.fetch(&mut keys).await {
            tracing::warn!(error = %e, "refreshing the issuer's JWKS failed");
        }
        keys.by_kid.get(kid).cloned()
    }

    /// The identity a bearer token proves, or why it proves none.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, QueryError> {
        let bad = |m: String| QueryError::Unauthenticated(format!("bearer token refused: {m}"));
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| bad(format!("not a signed JWT ({e})")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(bad(format!(
                "algorithm {:?} is not accepted (accepted: {})",
                header.alg,
                self.cfg.algorithms.join(", ")
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| bad("no kid in the header".into()))?;
        let key = self
            .key(&kid)
            .await
            .ok_or_else(|| bad(format!("unknown key id {kid:?}")))?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&self.cfg.audience);
        v.leeway = self.cfg.leeway_secs;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
                .map_err(|e| bad(e.to_string()))?;
        let claims = data.claims;
        let subject = claims
            .get(&self.cfg.subject_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(format!("no {} claim", self.cfg.subject_claim)))?
            .to_string();
        let roles = match claims.get(&self.cfg.roles_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => {
                s.split_whitespace().map(str::to_string).collect()
            }
            _ => Vec::new(),
        };
        let tenant = claims
            .get(&self.cfg.tenant_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Identity {
            subject,
            roles,
            tenant,
            auth: AuthKind::Oidc,
        })
    }
}

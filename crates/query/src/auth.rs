//! Who is calling. API keys (service accounts, local use) arrive in `X-Api-Key` and are
//! matched by their SHA-256 against the configuration, which never holds a key itself; OIDC
//! bearer tokens are checked by [`crate::oidc`]. Anything else is 401 with a message that
//! says what was expected.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::QueryError;
use crate::config::ApiKeyConfig;
use crate::oidc::Oidc;
use crate::service::{AuthKind, Identity};

pub struct Authenticator {
    /// SHA-256 hex of the key → its identity.
    api_keys: HashMap<String, Identity>,
    oidc: Option<Oidc>,
}

impl Authenticator {
    pub fn new(keys: &[ApiKeyConfig], oidc: Option<Oidc>) -> Self {
        let api_keys = keys
            .iter()
            .map(|k| {
                (
                    k.sha256.clone(),
                    Identity {
                        subject: k.name.clone(),
                        roles: k.roles.clone(),
                        tenant: k.tenant.clone(),
                        auth: AuthKind::ApiKey,
                    },
                )
            })
            .collect();
        Authenticator { api_keys, oidc }
    }

    /// The identity of a request from its headers.
    pub async fn authenticate(
        &self,
        api_key: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<Identity, QueryError> {
        match (api_key, bearer) {
            (Some(key), _) => {
                let hash = hex::encode(Sha256::digest(key.trim().as_bytes()));
                self.api_keys
                    .get(&hash)
                    .cloned()
                    .ok_or_else(|| QueryError::Unauthenticated("the API key in X-Api-Key is not one this service knows".into()))
            }
            (None, Some(token)) => match &self.oidc {
                Some(oidc) => oidc.authenticate(token.trim()).await,
                None => Err(QueryError::Unauthenticated(
                    "bearer tokens are not accepted by this service (no [query.oidc] issuer is configured); send an API key in X-Api-Key".into(),
                )),
            },
            (None, None) => Err(QueryError::Unauthenticated(if self.oidc.is_some() {
                "no credentials: send Authorization: Bearer <token from your identity provider>, or an API key in X-Api-Key".into()
            } else {
                "no credentials: send an API key in X-Api-Key".into()
            })),
        }
    }
}

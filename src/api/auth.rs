//! HTTP Basic authentication (RFC 7617) against the accounts' argon2
//! hashes, with a cache of verified credentials.
//!
//! A hash costs milliseconds by design, so a verified login/password pair is
//! cached for `api.auth_cache_secs` seconds, keyed by SHA-256 over a random
//! per-process salt, the login and the password: a wrong password gives a
//! different key and can never match a cached entry. The cache holds at
//! most 10,000 entries. A password changed with `mediator account` on
//! another process is seen once the entry expires.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::model::account::Account;
use crate::store::Store;
use crate::store::accounts::{hash_password, verify_password};

/// Checks credentials and remembers the good ones.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Cache<[u8; 32], Arc<Account>>,
    salt: [u8; 32],
    /// Verified against when the login is unknown, so that unknown logins
    /// cost as much time as wrong passwords.
    dummy_hash: Arc<String>,
}

impl Authenticator {
    /// An authenticator over `store`, caching for `ttl`.
    pub fn new(store: Store, ttl: Duration) -> Self {
        let mut salt = [0u8; 32];
        rand::fill(&mut salt);
        Self {
            store,
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            salt,
            dummy_hash: Arc::new(hash_password("not a password of anybody")),
        }
    }

    fn key(&self, login: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((login.len() as u64).to_be_bytes());
        h.update(login.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// The account for a login and password, or [`ApiError::Unauthorized`].
    ///
    /// Concurrent requests with the same credentials wait for one
    /// verification instead of hashing once each; failures are not cached.
    pub async fn check(&self, login: &str, password: &str) -> Result<Arc<Account>, ApiError> {
        let key = self.key(login, password);
        if let Some(acc) = self.cache.get(&key).await {
            return Ok(acc);
        }
        self.cache
            .try_get_with(key, self.verify(login, password))
            .await
            .map_err(|e: Arc<ApiError>| match e.as_ref() {
                ApiError::Unavailable => ApiError::Unavailable,
                ApiError::Internal => ApiError::Internal,
                _ => ApiError::Unauthorized,
            })
    }

    async fn verify(&self, login: &str, password: &str) -> Result<Arc<Account>, ApiError> {
        let found = self.store.account_by_login(login).await?;
        let (account, hash) = match found {
            Some((a, h)) => (Some(a), h),
            None => (None, self.dummy_hash.as_ref().clone()),
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|_| ApiError::Internal)?;
        match (ok, account) {
            (true, Some(a)) => Ok(Arc::new(a)),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// The authenticated account of a request.
pub struct Caller(pub Arc<Account>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, encoded) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthorized);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ApiError::Unauthorized)?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::Unauthorized)?;
        let (login, password) = text.split_once(':').ok_or(ApiError::Unauthorized)?;
        state.auth.check(login, password).await.map(Caller)
    }
}

//! The feature server's own access control: bearer tokens with scopes (`server.auth`), a
//! request rate per token, and a bound on concurrent requests (`server.max_concurrent_requests`).
//!
//! - A token is kept only as its SHA-256; a presented token is hashed and compared with every
//!   configured digest in constant time (`subtle`), so neither the comparison nor which token
//!   matched leaks through timing. Tokens never reach logs or messages: a token is named by its
//!   `name`.
//! - Each route needs one scope ([`required_scope`]); `/livez`, `/readyz` and `/ready` are
//!   always open, `/metrics` as configured. Missing or unknown token: 401 with
//!   `WWW-Authenticate: Bearer`; a token without the scope: 403 naming both.
//! - Past a token's rate (GCRA, `governor`) or the concurrency bound: 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use quiver::config::{MetricsAccess, Scope, ServerConfig};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// What the server checks before a request reaches its route.
#[derive(Default)]
pub struct Access {
    /// `None`: no `server.auth`, every route open.
    tokens: Option<Vec<Token>>,
    metrics: MetricsAccess,
    concurrency: Option<(Arc<Semaphore>, usize)>,
}

struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl Access {
    /// Reads `server.auth` and `server.max_concurrent_requests`; the error names the field.
    pub fn from_config(server: &ServerConfig) -> Result<Access, String> {
        let concurrency = match server.max_concurrent_requests {
            Some(0) => return Err("`server.max_concurrent_requests` must be at least 1".into()),
            Some(n) => Some((Arc::new(Semaphore::new(n)), n)),
            None => None,
        };
        let Some(auth) = &server.auth else {
            return Ok(Access {
                concurrency,
                ..Access::default()
            });
        };
        if auth.tokens.is_empty() {
            return Err(
                "`server.auth.tokens` is empty: with `auth`, give at least one token".into(),
            );
        }
        let mut tokens = Vec::new();
        for (i, t) in auth.tokens.iter().enumerate() {
            let what = format!("`server.auth.tokens[{i}]` (`{}`)", t.name);
            let digest: [u8; 32] = match (&t.sha256, &t.env) {
                (Some(hex_digest), None) => hex::decode(hex_digest.trim())
                    .ok()
                    .and_then(|d| d.try_into().ok())
                    .ok_or_else(|| {
                        format!("{what}: `sha256` must be 64 hex digits (`printf %s \"$TOKEN\" | sha256sum`)")
                    })?,
                (None, Some(var)) => {
                    let token = std::env::var(var).map_err(|_| {
                        format!("{what}: environment variable `{var}` (its `env`) is not set")
                    })?;
                    if token.is_empty() {
                        return Err(format!("{what}: environment variable `{var}` is empty"));
                    }
                    Sha256::digest(token.as_bytes()).into()
                }
                _ => return Err(format!("{what}: give exactly one of `sha256` or `env`")),
            };
            if t.scopes.is_empty() {
                return Err(format!("{what}: `scopes` is empty (read, write, admin)"));
            }
            let limiter = match t.rate {
                None => None,
                Some(rate) if rate.is_finite() && rate > 0.0 => {
                    let burst = t.burst.unwrap_or_else(|| rate.ceil() as u32).max(1);
                    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
                        .ok_or_else(|| format!("{what}: `rate` {rate} is too high"))?
                        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                    Some(RateLimiter::direct(quota))
                }
                Some(rate) => {
                    return Err(format!("{what}: `rate` must be a number > 0, got {rate}"));
                }
            };
            tokens.push(Token {
                name: t.name.clone(),
                digest,
                scopes: t.scopes.clone(),
                limiter,
            });
        }
        Ok(Access {
            tokens: Some(tokens),
            metrics: auth.metrics,
            concurrency,
        })
    }

    /// The configured token whose digest is the presented token's, checked against every
    /// token in constant time.
    fn token(tokens: &[Token], presented: &str) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (i, t) in tokens.iter().enumerate() {
            if bool::from(t.digest.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found
    }
}

/// The scope a request needs; `None`: open to anyone.
pub fn required_scope(method: &Method, path: &str, metrics: MetricsAccess) -> Option<Scope> {
    let write = !matches!(*method, Method::GET | Method::HEAD);
    match path {
        "/livez" | "/readyz" | "/ready" => None,
        "/metrics" => match metrics {
            MetricsAccess::Open => None,
            MetricsAccess::Read => Some(Scope::Read),
            MetricsAccess::Admin => Some(Scope::Admin),
        },
        // A read, though it is a POST.
        "/get-online-features" => Some(Scope::Read),
        "/materialize" | "/invalidate" | "/prune-online" | "/export" => Some(Scope::Admin),
        p if p.starts_with("/export/") => Some(if write { Scope::Admin } else { Scope::Read }),
        "/write-to-online-store" | "/push" => Some(Scope::Write),
        p if p.starts_with("/records") || p.starts_with("/predictions") => {
            Some(if write { Scope::Write } else { Scope::Read })
        }
        // `/health`, `/stats`, `/lineage`, and unknown routes (their 404 lists the routes).
        _ => Some(Scope::Read),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthenticated(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn too_many(message: String, retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "resource_exhausted", message).into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The middleware: concurrency bound, then token and scope, then the token's rate.
pub async fn guard(
    State(access): State<Arc<Access>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Nothing configured (the default): no per-request work on the serving path.
    if access.tokens.is_none() && access.concurrency.is_none() {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let scope = required_scope(request.method(), path, access.metrics);
    let probe = matches!(path, "/livez" | "/readyz" | "/ready");
    let _permit = match (&access.concurrency, probe) {
        (Some((semaphore, limit)), false) => match semaphore.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return too_many(
                    format!(
                        "the server is handling its limit of {limit} concurrent requests (`server.max_concurrent_requests`); retry shortly"
                    ),
                    Duration::from_secs(1),
                );
            }
        },
        _ => None,
    };
    if let (Some(tokens), Some(scope)) = (&access.tokens, scope) {
        let Some(presented) = bearer(request.headers()) else {
            return unauthenticated(
                "this server requires a token: send `Authorization: Bearer <token>`",
            );
        };
        let Some(i) = Access::token(tokens, presented) else {
            return unauthenticated("the bearer token is not one of this server's tokens");
        };
        let token = &tokens[i];
        if !token.scopes.contains(&scope) {
            let has: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                format!(
                    "token `{}` lacks scope `{}` for {} {path} (it has: {})",
                    token.name,
                    scope.as_str(),
                    request.method(),
                    has.join(", ")
                ),
            )
            .into_response();
        }
        if let Some(limiter) = &token.limiter
            && let Err(not_until) = limiter.check()
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return too_many(
                format!(
                    "token `{}` is over its request rate (`rate` in `server.auth.tokens`); retry after the `Retry-After` seconds",
                    token.name
                ),
                wait,
            );
        }
    }
    next.run(request).await
}

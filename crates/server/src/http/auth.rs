//! Who may use the HTTP API. ACL tokens from `--http-token-file` are
//! checked by one middleware in front of every route ([`check`]), so the
//! same router can be served over HTTPS; and the start rule: an API
//! reachable beyond loopback needs tokens or `--http-insecure`.
//!
//! Tokens are kept as SHA-256 digests and compared in constant time with
//! every configured token, so neither timing nor a memory dump of the
//! table gives a token away.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::settings::Settings;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET and HEAD requests.
    Read,
    /// Every request.
    Write,
}

/// A token file that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `TOKEN read` or `TOKEN write`.
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds no token (nobody could use the API).
    #[error("{} holds no token; add lines such as `TOKEN write`", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The digests of the configured tokens and what each allows.
struct Table(Vec<([u8; 32], Access)>);

impl Table {
    /// What `token` allows, if it is one of ours. Every entry is compared,
    /// whichever matches.
    fn access(&self, token: &[u8]) -> Option<Access> {
        let d = digest(token);
        let mut found = None;
        for (known, access) in &self.0 {
            if bool::from(known.ct_eq(&d)) {
                found = Some(*access);
            }
        }
        found
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A loaded `--http-token-file`: its path (to re-read it on SIGHUP) and
/// its tokens.
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    table: Arc<Table>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens, not even their digests.
        write!(
            f,
            "TokenFile({}, {} tokens)",
            self.path.display(),
            self.table.0.len()
        )
    }
}

impl TokenFile {
    /// Reads and checks `path`: lines `TOKEN read` or `TOKEN write`, blank
    /// lines and `#` comments; any other line is an error naming it.
    pub fn load(path: &Path) -> Result<TokenFile, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table = parse(&text).map_err(|(line, reason)| TokenFileError::Line {
            path: path.to_owned(),
            line,
            reason,
        })?;
        if table.0.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(TokenFile {
            path: path.to_owned(),
            table: Arc::new(table),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What `token` allows, if it is one of the file's.
    pub fn access(&self, token: &str) -> Option<Access> {
        self.table.access(token.as_bytes())
    }
}

/// The file's table, or the number and reason of its first bad line.
fn parse(text: &str) -> Result<Table, (usize, String)> {
    let mut table = Table(Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [token, access] = fields[..] else {
            return Err((n, "expected `TOKEN read` or `TOKEN write`".into()));
        };
        // What a header can carry, so every token in the file is usable.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err((n, "a token is printable ASCII without spaces".into()));
        }
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            other => return Err((n, format!("access {other:?} is neither read nor write"))),
        };
        if table.access(token.as_bytes()).is_some() {
            return Err((n, "this token is already listed".into()));
        }
        table.0.push((digest(token.as_bytes()), access));
    }
    Ok(table)
}

/// Whether an HTTP API on `addr` may start: beyond loopback it needs tokens
/// or the operator's explicit `--http-insecure`.
pub(crate) fn check_exposure(addr: SocketAddr, tokens: bool, insecure: bool) -> Result<(), String> {
    if exposed(addr) && !tokens && !insecure {
        return Err(format!(
            "the HTTP API would listen on {addr}, beyond loopback, without tokens, so anyone who \
             reaches it could change the catalogue: give --http-token-file FILE (see \"Securing \
             Rarangi\" in docs/OPERATIONS.md), listen on loopback (--http 127.0.0.1:{}), or add \
             --http-insecure to accept the risk",
            addr.port()
        ));
    }
    Ok(())
}

/// Warns, once at start and before the API is announced as listening,
/// about an API reachable from other hosts without tokens.
pub(crate) fn warn_if_open(settings: &Settings) {
    if let Some(addr) = settings.http.filter(|a| exposed(*a)) {
        if settings.http_tokens.is_none() {
            tracing::warn!(
                http = %addr,
                "the HTTP API listens beyond loopback without tokens (--http-insecure): \
                 anyone who reaches it can read and change the catalogue"
            );
        }
    }
}

/// Whether an HTTP API on `addr` is reachable from other hosts.
pub(crate) fn exposed(addr: SocketAddr) -> bool {
    !crate::access::canonical(addr.ip()).is_loopback()
}

/// The token gate in front of the router: none when no token file is
/// configured. Cheap to clone.
#[derive(Clone)]
pub(super) struct Auth(Option<Arc<RwLock<TokenFile>>>);

impl Auth {
    /// The gate for these settings; with tokens, re-reads the file on
    /// SIGHUP.
    pub(super) fn start(settings: &Settings) -> Auth {
        let Some(file) = settings.http_tokens.clone() else {
            return Auth(None);
        };
        let shared = Arc::new(RwLock::new(file));
        reload_on_hangup(Arc::downgrade(&shared));
        Auth(Some(shared))
    }
}

/// Re-reads the token file on each SIGHUP while the gate lives; a file
/// that no longer parses keeps the previous tokens.
fn reload_on_hangup(gate: Weak<RwLock<TokenFile>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: a restart re-reads the token file");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(gate) = gate.upgrade() else { return };
            let path = gate.read().expect("token lock").path.clone();
            match TokenFile::load(&path) {
                Ok(file) => {
                    let n = file.table.0.len();
                    *gate.write().expect("token lock") = file;
                    tracing::info!(file = %path.display(), tokens = n, "re-read the HTTP tokens");
                }
                Err(e) => tracing::error!(
                    error = %crate::error_chain(&e),
                    "kept the previous HTTP tokens"
                ),
            }
        }
    });
}

/// The token a request carries: `Authorization: Bearer`, `X-Rarangi-Token`
/// or `X-Consul-Token` (for Consul-compatible clients).
fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    bearer.or_else(|| {
        ["x-rarangi-token", "x-consul-token"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .map(str::trim)
    })
}

/// The middleware: with tokens configured, reads need a read or write
/// token and everything else a write token; 401 or 403 otherwise.
pub(super) async fn check(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let Some(gate) = &auth.0 else {
        return next.run(req).await;
    };
    let need = if matches!(*req.method(), Method::GET | Method::HEAD) {
        Access::Read
    } else {
        Access::Write
    };
    let granted = presented(req.headers()).map(|t| gate.read().expect("token lock").access(t));
    match granted {
        None => unauthorized(
            "this catalogue needs a token: send Authorization: Bearer TOKEN (or X-Rarangi-Token)",
            None,
        ),
        Some(None) => unauthorized("unknown token", Some("invalid_token")),
        Some(Some(Access::Read)) if need == Access::Write => ApiError(
            StatusCode::FORBIDDEN,
            "this token may only read; changes need a write token".into(),
        )
        .into_response(),
        Some(Some(_)) => next.run(req).await,
    }
}

/// 401 with the challenge RFC 6750 asks for.
fn unauthorized(msg: &str, error: Option<&str>) -> Response {
    let mut r = ApiError(StatusCode::UNAUTHORIZED, msg.into()).into_response();
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"rarangi\", error=\"{e}\""),
        None => "Bearer realm=\"rarangi\"".into(),
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).expect("ASCII challenge"),
    );
    r
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;

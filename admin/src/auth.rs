//! The admin token: from `FAASO_TOKEN`, or made once and kept (0600) in the state directory;
//! compared in constant time on every admin request.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::AdminState;
use crate::guesses::Guesses;

/// Tokens shorter than this are refused: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// The admin bearer token, and the record of wrong guesses at it.
#[derive(Clone)]
pub struct Token(Arc<Kept>);

struct Kept {
    text: Box<str>,
    guesses: Guesses,
}

impl Token {
    fn from_text(text: &str) -> Self {
        Self(Arc::new(Kept {
            text: text.into(),
            guesses: Guesses::default(),
        }))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The configured token is too short.
    #[error("the admin token must be at least {MIN_TOKEN_LEN} characters")]
    TooShort,
    /// The token file could not be read or written.
    #[error("cannot keep the admin token in {path}: {source}")]
    Io {
        /// The token file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Token {
    /// A token given explicitly (from `FAASO_TOKEN`).
    pub fn new(token: &str) -> Result<Self, TokenError> {
        let token = token.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort);
        }
        Ok(Self::from_text(token))
    }

    /// The token kept in `<state_dir>/token`, made (random, 0600) at first start. The bool says
    /// whether it was made now, so the caller prints it once.
    pub fn load_or_create(state_dir: &Path) -> Result<(Self, bool), TokenError> {
        let path = state_dir.join("token");
        let io = |source| TokenError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::new(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(state_dir).map_err(io)?;
                let token = random_token().map_err(io)?;
                write_private(&path, token.as_bytes()).map_err(io)?;
                Ok((Self::from_text(&token), true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Keeps this token as `<state_dir>/token` (0600), where `load_or_create` finds it.
    pub fn store(&self, state_dir: &Path) -> Result<(), TokenError> {
        let path = state_dir.join("token");
        std::fs::create_dir_all(state_dir)
            .and_then(|()| write_private(&path, self.0.text.as_bytes()))
            .map_err(|source| TokenError::Io {
                path: path.display().to_string(),
                source,
            })
    }

    /// The token text.
    pub fn reveal(&self) -> &str {
        &self.0.text
    }

    /// Whether `candidate` is the token, in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.text.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

/// 32 random bytes from the kernel, hex-encoded.
fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `bytes` to a new file only its owner can read (0600), replacing `path` atomically.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_private_as(path, bytes, |_| Ok(()))
}

/// Like [`write_private`]; `prepare` acts on the finished file (hands it to another owner, say)
/// before it replaces `path`, so the file at `path` is never seen half done.
pub(crate) fn write_private_as(
    path: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temporary_beside(path);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        prepare(&tmp)?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A name beside `path` that no other write uses: hidden (a leading `.`, which no secret key or
/// token file has), and unique to this process and this write. `<key>.tmp` named another key
/// (`a.b` → `a.tmp`), whose value a write then removed, and two writes of one key shared it.
fn temporary_beside(path: &Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{write}.tmp", std::process::id()))
}

/// Lets a request through only with `Authorization: Bearer <token>`; else 401 with
/// `WWW-Authenticate`. A client (by the address the listener gives as an `IpAddr` extension)
/// that sent too many wrong tokens gets 429 with `Retry-After` until its wait is over, whatever
/// it sends: its guesses are not even looked at.
pub(crate) async fn require_token(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    let client = request.extensions().get::<IpAddr>().copied();
    let guesses = &state.token.0.guesses;
    let now = Instant::now();
    if let Some(wait) = client.and_then(|c| guesses.must_wait(c, now)) {
        let seconds = wait.as_secs().max(1);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "error": format!("too many wrong tokens from this address; try again in {seconds} s")
            })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if state.token.matches(token) => {
            if let Some(client) = client {
                guesses.right(client);
            }
            next.run(request).await
        }
        _ => {
            // A request with no token is no guess (a browser before login, a probe).
            if let (Some(client), Some(_)) = (client, given) {
                guesses.wrong(client, now);
            }
            let mut response = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "a valid bearer token is required"})),
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"faaso admin\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = Token::load_or_create(dir.path()).unwrap();
        assert!(created);
        assert_eq!(first.reveal().len(), 64);
        let mode = std::fs::metadata(dir.path().join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, created) = Token::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert!(second.matches(first.reveal()));
        assert!(!second.matches("wrong"));
        assert!(!second.matches(""));
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(Token::new("short").is_err());
    }
}

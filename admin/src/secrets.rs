//! Secret values: files `<state>/secrets/<funko>/<key>`, mode 0600, owned by the uid funkos run
//! as (so the read-only bind mount at `/secrets/<key>` is readable inside and nowhere else), and
//! the routes that set, remove and list them (keys only, never values).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use faaso_schema::{FunkoName, SecretKey};

use crate::funkos::{error, funko_name};
use crate::{AdminEvent, AdminState};

/// The uid (and gid) the runtimes' images run as: secret files belong to it.
pub const FUNKO_UID: u32 = 10001;
/// The largest secret value accepted.
const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Where secret values are kept.
#[derive(Debug, Clone)]
pub struct SecretStore {
    dir: PathBuf,
}

/// A secret operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading or writing the store failed.
    #[error("cannot {action} secret `{funko}/{key}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The funko.
        funko: String,
        /// The key.
        key: String,
        /// The error.
        source: std::io::Error,
    },
}

impl SecretStore {
    /// A store in `dir` (`<state>/secrets`), the folder the reconciler mounts secrets from.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Sets a secret, replacing any old value atomically.
    pub fn set(&self, funko: &FunkoName, key: &SecretKey, value: &[u8]) -> Result<(), SecretError> {
        let io = |source| SecretError::Io {
            action: "store",
            funko: funko.to_string(),
            key: key.0.clone(),
            source,
        };
        let folder = self.dir.join(funko.as_str());
        std::fs::create_dir_all(&folder).map_err(io)?;
        let path = folder.join(&key.0);
        // Owned by the funko's uid before it is swapped in: readable through the bind mount,
        // by nobody else, and never for a moment root's only.
        crate::auth::write_private_as(&path, value, |file| {
            if let Err(e) = std::os::unix::fs::chown(file, Some(FUNKO_UID), Some(FUNKO_UID)) {
                tracing::warn!(error = %e, "cannot hand the secret file to uid {FUNKO_UID}; funkos may not read it");
            }
            Ok(())
        })
        .map_err(io)
    }

    /// Removes a secret; `false` when there was none.
    pub fn remove(&self, funko: &FunkoName, key: &SecretKey) -> Result<bool, SecretError> {
        match std::fs::remove_file(self.dir.join(funko.as_str()).join(&key.0)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(SecretError::Io {
                action: "remove",
                funko: funko.to_string(),
                key: key.0.clone(),
                source,
            }),
        }
    }

    /// Every funko's secret keys, sorted.
    pub fn keys(&self) -> BTreeMap<String, Vec<String>> {
        let mut keys = BTreeMap::new();
        let Ok(funkos) = std::fs::read_dir(&self.dir) else {
            return keys;
        };
        for funko in funkos.filter_map(Result::ok) {
            let Ok(files) = std::fs::read_dir(funko.path()) else {
                continue;
            };
            let mut names: Vec<String> = files
                .filter_map(Result::ok)
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .filter(|n| SecretKey::new(n).is_ok())
                .collect();
            names.sort();
            if !names.is_empty() {
                keys.insert(funko.file_name().to_string_lossy().into_owned(), names);
            }
        }
        keys
    }
}

/// Routes under `/admin/secrets`.
pub(crate) fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/secrets", get(list)).route(
        "/secrets/{funko}/{key}",
        axum::routing::put(set).delete(remove),
    )
}

async fn list(State(state): State<Arc<AdminState>>) -> Response {
    Json(state.secrets.keys()).into_response()
}

// The error is the handler's answer, built at most once per request: no need to box it.
#[allow(clippy::result_large_err)]
fn parse(funko: &str, key: &str) -> Result<(FunkoName, SecretKey), Response> {
    let funko = funko_name(funko)?;
    let key = SecretKey::new(key).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok((funko, key))
}

async fn set(
    State(state): State<Arc<AdminState>>,
    Path((funko, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (funko, key) = match parse(&funko, &key) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    // No body and an empty one are the same in HTTP; the description requires one, and a
    // secret file with nothing in it is more likely a mistake than a value.
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "the value of secret `{funko}/{}` is empty; send it as the body (DELETE removes a secret)",
                key.0
            ),
        );
    }
    if body.len() > MAX_SECRET_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a secret may be at most {MAX_SECRET_BYTES} bytes"),
        );
    }
    match state.secrets.set(&funko, &key, &body) {
        Ok(()) => {
            state.changed(AdminEvent::Secret {
                funko: funko.to_string(),
                key: key.0.clone(),
                removed: false,
            });
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn remove(
    State(state): State<Arc<AdminState>>,
    Path((funko, key)): Path<(String, String)>,
) -> Response {
    let (funko, key) = match parse(&funko, &key) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    match state.secrets.remove(&funko, &key) {
        Ok(true) => {
            state.changed(AdminEvent::Secret {
                funko: funko.to_string(),
                key: key.0.clone(),
                removed: true,
            });
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("funko `{funko}` has no secret `{}`", key.0),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_private_files_listed_by_key_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path().to_owned());
        let funko = FunkoName::new("hello").unwrap();
        let key = SecretKey::new("api-key").unwrap();
        store.set(&funko, &key, b"s3cr3t").unwrap();
        let file = dir.path().join("hello/api-key");
        assert_eq!(std::fs::read(&file).unwrap(), b"s3cr3t");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        store.set(&funko, &key, b"new").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        let keys = store.keys();
        assert_eq!(keys["hello"], vec!["api-key".to_owned()]);
        assert!(!format!("{keys:?}").contains("new"));
        assert!(store.remove(&funko, &key).unwrap());
        assert!(!store.remove(&funko, &key).unwrap());
    }

    /// Setting `a.b` leaves a secret named `a.tmp` alone (its temporary file was `a.tmp`), and
    /// many writes of one key at once each swap in a whole value of their own, none mixed.
    #[test]
    fn writes_use_temporary_names_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path().to_owned());
        let funko = FunkoName::new("hello").unwrap();
        let other = SecretKey::new("a.tmp").unwrap();
        store.set(&funko, &other, b"keep me").unwrap();
        store
            .set(&funko, &SecretKey::new("a.b").unwrap(), b"x")
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("hello/a.tmp")).unwrap(),
            b"keep me"
        );

        let key = SecretKey::new("shared").unwrap();
        let values: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 256 * 1024]).collect();
        std::thread::scope(|scope| {
            for value in &values {
                let (store, funko, key) = (&store, &funko, &key);
                scope.spawn(move || {
                    for _ in 0..20 {
                        store.set(funko, key, value).unwrap();
                    }
                });
            }
        });
        let last = std::fs::read(dir.path().join("hello/shared")).unwrap();
        assert!(values.contains(&last), "a value mixed from several writes");
        assert_eq!(store.keys()["hello"], ["a.b", "a.tmp", "shared"]);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("hello"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}

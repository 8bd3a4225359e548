//! Artifacts: agents upload an attempt's files; admins list and download them.
//!
//! Files live at `<data_dir>/artifacts/<run>/<node>/<attempt>/<path>`. An upload streams
//! into a temporary file beside its target, hashing and counting as it goes, and is renamed
//! into place only when complete, so a reader never sees half a file. No symlink is ever
//! followed: every directory on the way is checked to be a real directory.

use std::io;
use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_api::{ArtifactDoc, AttemptRef};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::AppState;
use crate::auth::{Agent, Caller};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};

/// Longest artifact path accepted, in bytes.
const MAX_PATH_BYTES: usize = 1024;

/// Query of an upload.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    fence: i64,
}

/// `PUT /agent/attempts/{id}/artifacts/{*path}?fence=F`: stores one file of an attempt.
pub(crate) async fn upload(
    agent: Agent,
    State(state): State<AppState>,
    Path((attempt_id, path)): Path<(i64, String)>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let parts = artifact_path(&path).map_err(ApiError::bad_request)?;
    let limit = state.max_artifact_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let attempt = AttemptRef {
        attempt_id,
        fence: query.fence,
    };
    let target = state.store().artifact_target(&agent.id, attempt).await?;
    let attempt_dir = [
        target.run_id.as_str(),
        target.node.as_str(),
        &target.attempt.to_string(),
    ];
    if attempt_dir.iter().any(|part| !is_plain_component(part)) {
        return Err(ApiError::internal(
            "the store named an artifact directory that is not a plain path",
        ));
    }
    let (file_name, parents) = parts
        .split_last()
        .ok_or_else(|| ApiError::bad_request("artifact path is empty"))?;
    let dirs: Vec<String> = attempt_dir
        .iter()
        .copied()
        .chain(parents.iter().copied())
        .map(str::to_owned)
        .collect();
    let base = state.artifacts_dir().to_path_buf();
    let dir = tokio::task::spawn_blocking(move || create_dirs_nofollow(&base, &dirs))
        .await
        .map_err(|_| ApiError::internal("artifact directory task failed"))?
        .map_err(dir_error)?;

    let temp = TempFile::new(&dir);
    let (size, sha256) = write_body(&temp.path, body, limit).await?;
    let final_path = dir.join(file_name);
    // `rename` replaces a directory entry and never follows a symlink in its place.
    tokio::fs::rename(&temp.path, &final_path)
        .await
        .map_err(|err| {
            if final_path.is_dir() {
                ApiError::conflict(format!("artifact path {path:?} is a directory"))
            } else {
                ApiError::unavailable("cannot store the artifact", &err)
            }
        })?;
    temp.disarm();
    state
        .store()
        .record_artifact(attempt_id, &path, size, &sha256)
        .await?;
    tracing::debug!(attempt = attempt_id, path, size, "artifact stored");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /runs/{id}/artifacts`.
pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Vec<ArtifactDoc>>, ApiError> {
    Ok(Json(state.store().artifacts(&run_id).await?))
}

/// `GET /runs/{id}/artifacts/{node}/{attempt}/{*path}`: the file's bytes.
pub(crate) async fn download(
    _: Caller,
    State(state): State<AppState>,
    Path((run_id, node, attempt, path)): Path<(String, String, u32, String)>,
) -> Result<Response, ApiError> {
    let parts = artifact_path(&path).map_err(ApiError::bad_request)?;
    let absent = || ApiError::not_found(format!("artifact {node}/{attempt}/{path}"));
    // Only recorded files are served: a file on disk that was never recorded (an upload cut
    // short, say) does not exist as far as the API goes.
    let recorded = state
        .store()
        .artifacts(&run_id)
        .await?
        .into_iter()
        .any(|doc| doc.node == node && doc.attempt == attempt && doc.path == path);
    if !recorded || !is_plain_component(&run_id) || !is_plain_component(&node) {
        return Err(absent());
    }
    let mut file_path = state.artifacts_dir().to_path_buf();
    file_path.extend([run_id.as_str(), node.as_str(), &attempt.to_string()]);
    file_path.extend(parts);
    let file = tokio::task::spawn_blocking(move || open_nofollow(&file_path))
        .await
        .map_err(|_| ApiError::internal("artifact open task failed"))?
        .map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => absent(),
            _ => ApiError::unavailable("cannot read the artifact", &err),
        })?;
    let len = file
        .metadata()
        .map_err(|err| ApiError::unavailable("cannot read the artifact", &err))?
        .len();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(response)
}

/// Checks an artifact path and splits it into its components.
fn artifact_path(path: &str) -> Result<Vec<&str>, String> {
    if path.is_empty() {
        return Err("artifact path is empty".to_owned());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "artifact path is longer than {MAX_PATH_BYTES} bytes"
        ));
    }
    if path.starts_with('/') {
        return Err(format!("artifact path {path:?} is absolute"));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(format!("artifact path {path:?} holds a backslash or NUL"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if let Some(bad) = parts.iter().find(|part| !is_plain_component(part)) {
        return Err(format!(
            "artifact path {path:?} has a bad component {bad:?} (empty or dots only)"
        ));
    }
    Ok(parts)
}

/// A non-empty file name that is not `.`, `..` or any other dots-only name.
fn is_plain_component(part: &str) -> bool {
    !part.is_empty() && !part.bytes().all(|b| b == b'.') && !part.contains(['/', '\\', '\0'])
}

/// Creates `base/dirs…`, refusing to pass through anything that is not a real directory.
fn create_dirs_nofollow(base: &FsPath, dirs: &[String]) -> io::Result<PathBuf> {
    let mut path = base.to_path_buf();
    ensure_real_dir(&path)?;
    for dir in dirs {
        path.push(dir);
        ensure_real_dir(&path)?;
    }
    Ok(path)
}

fn ensure_real_dir(path: &FsPath) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", path.display()),
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(path) {
            Ok(()) => Ok(()),
            // Another upload made it in between: check what it is.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.is_dir() => Ok(()),
                    _ => Err(err),
                }
            }
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    }
}

fn dir_error(err: io::Error) -> ApiError {
    if err.kind() == io::ErrorKind::NotADirectory {
        ApiError::conflict("artifact path passes through a file that is not a directory")
    } else {
        ApiError::unavailable("cannot create the artifact directory", &err)
    }
}

/// Opens a regular file, refusing a symlink in its place.
fn open_nofollow(path: &FsPath) -> io::Result<std::fs::File> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a regular file",
        ));
    }
    std::fs::File::open(path)
}

/// Streams the body into the file at `path`, within `limit` bytes; returns size and SHA-256.
async fn write_body(path: &FsPath, mut body: Body, limit: u64) -> Result<(u64, String), ApiError> {
    let storage = |err: io::Error| ApiError::unavailable("cannot store the artifact", &err);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(storage)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::bad_request(format!("artifact upload was cut short: {err}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(storage)?;
    }
    file.flush().await.map_err(storage)?;
    Ok((size, hex::encode(hasher.finalize())))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::too_large(format!("artifact is over the limit of {limit} bytes"))
}

/// A temporary upload file, removed on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn new(dir: &FsPath) -> TempFile {
        let mut nonce = [0u8; 8];
        rand::fill(&mut nonce);
        TempFile {
            path: dir.join(format!(".baton-upload-{}", hex::encode(nonce))),
            keep: false,
        }
    }

    fn disarm(mut self) {
        self.keep = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the file may never have been created.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_are_checked() {
        assert_eq!(artifact_path("dist/app.tar").unwrap(), ["dist", "app.tar"]);
        assert_eq!(artifact_path(".env").unwrap(), [".env"]);
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "...",
            "a\\b",
            "a\0b",
        ] {
            assert!(artifact_path(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(artifact_path(&"a".repeat(1025)).is_err());
        assert!(artifact_path(&"a".repeat(1024)).is_ok());
    }

    #[test]
    fn directories_are_made_but_symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let made = create_dirs_nofollow(dir.path(), &["r".into(), "n".into()]).unwrap();
        assert!(made.is_dir());
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("link")).unwrap();
        let err = create_dirs_nofollow(dir.path(), &["link".into(), "x".into()]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        assert!(!elsewhere.path().join("x").exists());
    }
}

//! Collecting an attempt's artifacts from its work dir and uploading them.

use std::fs;
use std::path::{Path, PathBuf};

use baton_api::Stream;

use crate::client::Client;
use crate::glob::Pattern;
use crate::logs::LogBuffer;

/// Most files collected from one attempt.
pub(crate) const MAX_FILES: usize = 1000;
/// Largest file uploaded (the server's limit).
pub(crate) const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// Files found for a set of patterns.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// `(relative /-separated path, absolute path)`, in walk order.
    pub(crate) files: Vec<(String, PathBuf)>,
    /// More files matched than [`MAX_FILES`].
    pub(crate) truncated: bool,
    /// Things that could not be read.
    pub(crate) problems: Vec<String>,
}

/// Walks `root` without following symlinks and collects the regular files that match one
/// of `patterns` (or lie under a directory that matches one).
pub(crate) fn find(root: &Path, patterns: &[String]) -> Found {
    let mut found = Found::default();
    let compiled: Vec<Pattern> = patterns
        .iter()
        .filter_map(|p| {
            let c = Pattern::new(p);
            if c.is_none() {
                found.problems.push(format!(
                    "artifact pattern {p:?} reaches outside the work dir; ignored"
                ));
            }
            c
        })
        .collect();
    if !compiled.is_empty() {
        let mut rel = Vec::new();
        walk(root, &mut rel, &compiled, false, &mut found);
    }
    found
}

fn walk(dir: &Path, rel: &mut Vec<String>, patterns: &[Pattern], all: bool, found: &mut Found) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found
                .problems
                .push(format!("cannot read {}: {e}", display(rel)));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        if found.truncated {
            return;
        }
        let Ok(name) = entry.file_name().into_string() else {
            found.problems.push(format!(
                "skipped a file whose name is not UTF-8 in {}",
                display(rel)
            ));
            continue;
        };
        // `DirEntry::file_type` does not follow symlinks.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        rel.push(name);
        let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
        if kind.is_dir() {
            let matched = all || patterns.iter().any(|p| p.matches(&parts));
            if matched || patterns.iter().any(|p| p.may_match_below(&parts)) {
                walk(&entry.path(), rel, patterns, matched, found);
            }
        } else if kind.is_file() && (all || patterns.iter().any(|p| p.matches(&parts))) {
            if found.files.len() == MAX_FILES {
                found.truncated = true;
            } else {
                found.files.push((rel.join("/"), entry.path()));
            }
        }
        rel.pop();
    }
}

fn display(rel: &[String]) -> String {
    if rel.is_empty() {
        "the work dir".to_owned()
    } else {
        rel.join("/")
    }
}

/// Finds and uploads the artifacts of an attempt; problems become `baton:` lines on its
/// stderr and never change its outcome. Stops early when the attempt turns out stale.
pub(crate) async fn collect(
    client: &Client,
    attempt_id: i64,
    fence: i64,
    work_dir: &Path,
    patterns: &[String],
    logs: &mut LogBuffer,
) {
    let root = work_dir.to_owned();
    let patterns = patterns.to_vec();
    let found = match tokio::task::spawn_blocking(move || find(&root, &patterns)).await {
        Ok(found) => found,
        Err(e) => {
            logs.note(Stream::Stderr, &format!("artifact search failed: {e}"))
                .await;
            return;
        }
    };
    for problem in &found.problems {
        logs.note(Stream::Stderr, problem).await;
    }
    if found.truncated {
        let msg =
            format!("more than {MAX_FILES} artifact files; only the first {MAX_FILES} are kept");
        logs.note(Stream::Stderr, &msg).await;
    }
    for (rel, path) in found.files {
        let content = match read(&path).await {
            Ok(content) => content,
            Err(msg) => {
                logs.note(
                    Stream::Stderr,
                    &format!("artifact {rel} not uploaded: {msg}"),
                )
                .await;
                continue;
            }
        };
        match client
            .upload_artifact(attempt_id, fence, &rel, content)
            .await
        {
            Ok(()) => tracing::debug!(attempt = attempt_id, path = %rel, "artifact uploaded"),
            Err(e) if e.is_stale() => {
                logs.note(
                    Stream::Stderr,
                    &format!("artifact {rel} not uploaded: the attempt is no longer current"),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::warn!(attempt = attempt_id, path = %rel, error = %e, "artifact upload failed");
                logs.note(Stream::Stderr, &format!("artifact {rel} not uploaded: {e}"))
                    .await;
            }
        }
    }
}

async fn read(path: &Path) -> Result<Vec<u8>, String> {
    let meta = tokio::fs::symlink_metadata(path)
        .await
        .map_err(|e| e.to_string())?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes is over the limit of {MAX_FILE_BYTES}",
            meta.len()
        ));
    }
    tokio::fs::read(path).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, rel).unwrap();
    }

    fn rels(found: &Found) -> Vec<&str> {
        found.files.iter().map(|(r, _)| r.as_str()).collect()
    }

    #[test]
    fn finds_files_by_pattern_and_whole_matched_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for f in [
            "a.txt",
            "b.log",
            "dist/x.tar",
            "dist/sub/y.tar",
            "src/z.txt",
            "out/deep/f",
        ] {
            touch(root, f);
        }
        let found = find(root, &["*.txt".into(), "dist/**".into(), "out".into()]);
        assert_eq!(
            rels(&found),
            ["a.txt", "dist/sub/y.tar", "dist/x.tar", "out/deep/f"]
        );
        assert!(!found.truncated);
        let found = find(root, &["**/*.txt".into()]);
        assert_eq!(rels(&found), ["a.txt", "src/z.txt"]);
        let found = find(root, &["s?c/?.txt".into()]);
        assert_eq!(rels(&found), ["src/z.txt"]);
    }

    #[test]
    fn symlinks_are_not_followed_nor_collected() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        touch(outside.path(), "secret.txt");
        let root = tmp.path().join("work");
        fs::create_dir(&root).unwrap();
        touch(&root, "real.txt");
        symlink(outside.path(), root.join("linkdir")).unwrap();
        symlink(outside.path().join("secret.txt"), root.join("link.txt")).unwrap();
        let found = find(&root, &["**".into()]);
        assert_eq!(rels(&found), ["real.txt"]);
    }

    #[test]
    fn nothing_outside_the_dir_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("work");
        fs::create_dir(&root).unwrap();
        touch(tmp.path(), "sibling.txt");
        let found = find(
            &root,
            &[
                "../sibling.txt".into(),
                "/etc/hostname".into(),
                "*.txt".into(),
            ],
        );
        assert!(found.files.is_empty());
        assert_eq!(found.problems.len(), 2);
    }

    #[test]
    fn stops_at_the_file_limit() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..MAX_FILES + 5 {
            fs::write(tmp.path().join(format!("f{i:05}")), "x").unwrap();
        }
        let found = find(tmp.path(), &["*".into()]);
        assert_eq!(found.files.len(), MAX_FILES);
        assert!(found.truncated);
    }
}

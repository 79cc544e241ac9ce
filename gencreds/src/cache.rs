//! The file cache for rescans: the lowered form of each file keyed by its
//! path and the BLAKE3 hash of its bytes, so an unchanged file is never
//! parsed again. The key also carries the analyzer version and the limits;
//! files whose meaning depends on other files (`include!`) are never
//! cached. A cache that cannot be read is simply empty, and an entry that
//! does not decode is parsed again.
//!
//! Each file's lowered form is stored as its own blob, decoded only on a
//! hit and on the worker thread that needs it.

use crate::ir::FileIr;
use crate::source::{Limits, SourceFile};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Bumped whenever the IR or its meaning changes.
const FORMAT: &str = concat!("gencreds-cache-10-", env!("CARGO_PKG_VERSION"));

#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    format: &'a str,
    limits: (u64, usize),
    #[serde(borrow)]
    entries: Vec<(&'a str, [u8; 32], &'a [u8])>,
}

/// Lowered files by path, each with the hash of the bytes it came from.
#[derive(Debug, Default)]
pub struct Cache {
    bytes: Vec<u8>,
    entries: HashMap<PathBuf, ([u8; 32], Range<usize>)>,
}

impl Cache {
    /// Loads a cache file; missing, unreadable, stale or foreign: empty.
    pub fn load(path: &Path, limits: Limits) -> Cache {
        let Ok(bytes) = std::fs::read(path) else {
            return Cache::default();
        };
        let entries = match postcard::from_bytes::<Stored<'_>>(&bytes) {
            Ok(s)
                if s.format == FORMAT
                    && s.limits == (limits.max_file_bytes, limits.max_bracket_depth) =>
            {
                let base = bytes.as_ptr() as usize;
                s.entries
                    .iter()
                    .map(|(p, h, blob)| {
                        // The blob borrows from `bytes`: its offset is its address minus the base.
                        let start = blob.as_ptr() as usize - base;
                        (PathBuf::from(p), (*h, start..start + blob.len()))
                    })
                    .collect()
            }
            _ => return Cache::default(),
        };
        Cache { bytes, entries }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The lowered form of `path` if its bytes still hash to `hash`.
    pub fn get(&self, path: &Path, hash: &[u8; 32]) -> Option<FileIr> {
        let (h, range) = self.entries.get(path)?;
        if h != hash {
            return None;
        }
        postcard::from_bytes(self.bytes.get(range.clone())?).ok()
    }

    /// Writes the cache for `files` atomically.
    pub fn save(path: &Path, limits: Limits, files: &[SourceFile]) -> std::io::Result<()> {
        let blobs: Vec<(String, [u8; 32], Vec<u8>)> = files
            .par_iter()
            .filter(|f| !f.ir.volatile && f.hash != [0; 32])
            .filter_map(|f| {
                let blob = postcard::to_stdvec(&f.ir).ok()?;
                Some((f.path.to_string_lossy().into_owned(), f.hash, blob))
            })
            .collect();
        let mut entries: Vec<(&str, [u8; 32], &[u8])> = blobs
            .iter()
            .map(|(p, h, b)| (p.as_str(), *h, b.as_slice()))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let stored = Stored {
            format: FORMAT,
            limits: (limits.max_file_bytes, limits.max_bracket_depth),
            entries,
        };
        let bytes = postcard::to_stdvec(&stored).map_err(std::io::Error::other)?;
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

//! Reading and parsing source files, in parallel and defensively: a size
//! limit checked before reading, UTF-8 checked, a cheap bracket-depth scan
//! before syn sees the text (syn's parser and the drop of its tree recurse),
//! parsing on threads with large stacks, and span bookkeeping released after
//! every file so memory does not grow with the tree.

use crate::diagnostic::Code;
use crate::ir::{FileIr, Loc, LocalDiag};
use crate::lower;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Limits that keep a hostile or generated file from taking the scan down.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file parsed, in bytes.
    pub max_file_bytes: u64,
    /// Deepest bracket nesting parsed.
    pub max_bracket_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 * 1024 * 1024,
            max_bracket_depth: 256,
        }
    }
}

/// Stack size of the parse threads: deep but legal code must not overflow.
pub const PARSE_STACK_BYTES: usize = 256 * 1024 * 1024;

/// One file, lowered or refused.
#[derive(Debug)]
pub struct SourceFile {
    /// Its path.
    pub path: PathBuf,
    /// Its lowered form (empty when it could not be parsed).
    pub ir: FileIr,
    /// The BLAKE3 hash of its bytes (all zero when it could not be read, or
    /// when it was parsed without a file cache).
    pub hash: [u8; 32],
}

/// A thread pool with parse-sized stacks (`threads == 0`: one per core).
pub fn pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .stack_size(PARSE_STACK_BYTES)
        .num_threads(threads)
        .build()
}

/// Parses every file in parallel (call inside [`pool`]'s `install`),
/// returning them in the order of `paths`.
///
/// Work is handed out largest file first, so a big file does not start
/// last and leave one thread parsing alone at the end. No BLAKE3 is
/// computed: only the file cache needs it ([`parse_all_cached`]).
///
/// A file's lowered form is a few arena vectors ([`FileIr`]), so the kept
/// forms do not interleave with the syn trees allocated and freed file
/// after file (an earlier form with an allocation per node had to be
/// packed and unpacked to keep that from slowing the parse).
pub fn parse_all(paths: &[PathBuf], limits: Limits) -> Vec<SourceFile> {
    let order = largest_first(paths);
    let mut parsed: Vec<(usize, SourceFile)> = order
        .par_iter()
        .map(|&i| {
            let p = &paths[i];
            let f = match read_limited(p, limits) {
                Ok(bytes) => parse_bytes(p, bytes, [0; 32], limits),
                Err(refusal) => *refusal,
            };
            (i, f)
        })
        .collect();
    parsed.sort_unstable_by_key(|(i, _)| *i);
    parsed.into_iter().map(|(_, f)| f).collect()
}

/// Indices of `paths`, largest file first (ties and unreadable files in
/// path order: the order is deterministic).
fn largest_first(paths: &[PathBuf]) -> Vec<usize> {
    let sizes: Vec<u64> = paths
        .par_iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .collect();
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));
    order
}

fn refused(path: &Path, hash: [u8; 32], code: Code, loc: Loc, message: String) -> SourceFile {
    SourceFile {
        path: path.to_path_buf(),
        ir: FileIr {
            diags: vec![LocalDiag { code, loc, message }],
            ..FileIr::default()
        },
        hash,
    }
}

/// Reads one file within the size limit: its bytes, or the refusal.
fn read_limited(path: &Path, limits: Limits) -> Result<Vec<u8>, Box<SourceFile>> {
    use std::io::Read;
    let none = Loc::default();
    let unreadable = |e: std::io::Error| {
        Box::new(refused(
            path,
            [0; 32],
            Code::UnreadableFile,
            none,
            format!("cannot be read: {e}"),
        ))
    };
    let too_large = |len: u64| {
        Box::new(refused(
            path,
            [0; 32],
            Code::FileTooLarge,
            none,
            format!(
                "{len} bytes, larger than the {} bytes the analyzer parses; split the file, or move generated code into a crate that makes no bus calls",
                limits.max_file_bytes
            ),
        ))
    };
    // One open, the size from the open file, and a read that stops past
    // the limit even if the file grows meanwhile.
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    if len > limits.max_file_bytes {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Parses every file in parallel, reusing the lowered form of files whose
/// bytes are unchanged since `cache` was filled (call inside [`pool`]).
/// Returns the files and how many were parsed (cache misses).
pub fn parse_all_cached(
    paths: &[PathBuf],
    limits: Limits,
    cache: &crate::cache::Cache,
) -> (Vec<SourceFile>, usize) {
    let misses = std::sync::atomic::AtomicUsize::new(0);
    let files = paths
        .par_iter()
        .map(|p| {
            let bytes = match read_limited(p, limits) {
                Ok(b) => b,
                Err(refusal) => return *refusal,
            };
            let hash = *blake3::hash(&bytes).as_bytes();
            match cache.get(p, &hash) {
                Some(ir) => SourceFile {
                    path: p.clone(),
                    ir,
                    hash,
                },
                None => {
                    misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    parse_bytes(p, bytes, hash, limits)
                }
            }
        })
        .collect();
    (files, misses.into_inner())
}

/// Reads, guards, parses and lowers one file.
pub fn parse_one(path: &Path, limits: Limits) -> SourceFile {
    match read_limited(path, limits) {
        Ok(bytes) => {
            let hash = *blake3::hash(&bytes).as_bytes();
            parse_bytes(path, bytes, hash, limits)
        }
        Err(refusal) => *refusal,
    }
}

fn parse_bytes(path: &Path, bytes: Vec<u8>, hash: [u8; 32], limits: Limits) -> SourceFile {
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let loc = loc_of_offset(e.as_bytes(), at);
            return refused(
                path,
                hash,
                Code::UnreadableFile,
                loc,
                "is not valid UTF-8 here; Rust sources must be UTF-8".to_string(),
            );
        }
    };
    parse_text(path, &text, hash, limits)
}

/// Parses and lowers text already read.
pub fn parse_text(path: &Path, text: &str, hash: [u8; 32], limits: Limits) -> SourceFile {
    if let Some((depth_at, depth)) = too_deep(text.as_bytes(), limits.max_bracket_depth) {
        return refused(
            path,
            hash,
            Code::NestingTooDeep,
            loc_of_offset(text.as_bytes(), depth_at),
            format!(
                "brackets nest {depth} deep here, deeper than the {} the analyzer parses; split the expression",
                limits.max_bracket_depth
            ),
        );
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let ir = match syn::parse_file(text) {
        Ok(file) => {
            let mut ir = lower::lower_file_sized(&file, dir, text.len());
            ir.diags.extend(lower::private_runtime_uses(&file, text));
            drop(file);
            ir
        }
        Err(e) => FileIr {
            diags: vec![LocalDiag {
                code: Code::ParseError,
                loc: lower::loc(e.span()),
                message: format!(
                    "does not parse as Rust ({e}); fix the syntax: nothing in this file is analysed until it parses"
                ),
            }],
            ..FileIr::default()
        },
    };
    proc_macro2::extra::invalidate_current_thread_spans();
    SourceFile {
        path: path.to_path_buf(),
        ir,
        hash,
    }
}

fn loc_of_offset(bytes: &[u8], at: usize) -> Loc {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() as u32 + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count() as u32
        + 1;
    Loc { line, col }
}

/// Bytes [`too_deep`] looks at; every other byte is skipped by one table
/// load (about nine bytes in ten of ordinary code).
const GUARD_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let bytes = b"/r\"'([{)]}";
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
};

/// The offset and depth where bracket nesting first exceeds `max`, skipping
/// comments, string and char literals. A cheap, linear pre-parse guard.
pub fn too_deep(b: &[u8], max: usize) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if !GUARD_BYTES[b[i] as usize] {
            i += 1;
            continue;
        }
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |k| i + k);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut nest = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        nest += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'r' if matches!(b.get(i + 1), Some(b'#' | b'"'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut hashes = 0;
                let mut j = i + 1;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) == Some(&b'"') {
                    j += 1;
                    'raw: while j < b.len() {
                        if b[j] == b'"' && (1..=hashes).all(|k| b.get(j + k) == Some(&b'#')) {
                            j += hashes;
                            break 'raw;
                        }
                        j += 1;
                    }
                    i = j;
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() {
                    match memchr::memchr2(b'"', b'\\', &b[i..]) {
                        Some(k) if b[i + k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k;
                            break;
                        }
                        None => i = b.len(),
                    }
                }
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    let mut j = i + 2;
                    while j < b.len() && b[j] != b'\'' && j < i + 12 {
                        j += 1;
                    }
                    i = j;
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 2;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some((i, depth));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time guard the table-driven one replaced (the oracle
    /// of the test below).
    fn too_deep_reference(b: &[u8], max: usize) -> Option<(usize, usize)> {
        let mut depth = 0usize;
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let mut nest = 0usize;
                    while i < b.len() {
                        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                            nest += 1;
                            i += 2;
                        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                            nest -= 1;
                            i += 2;
                            if nest == 0 {
                                break;
                            }
                        } else {
                            i += 1;
                        }
                    }
                    continue;
                }
                b'r' if matches!(b.get(i + 1), Some(b'#' | b'"'))
                    && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
                {
                    let mut hashes = 0;
                    let mut j = i + 1;
                    while b.get(j) == Some(&b'#') {
                        hashes += 1;
                        j += 1;
                    }
                    if b.get(j) == Some(&b'"') {
                        j += 1;
                        'raw: while j < b.len() {
                            if b[j] == b'"' && (1..=hashes).all(|k| b.get(j + k) == Some(&b'#')) {
                                j += hashes;
                                break 'raw;
                            }
                            j += 1;
                        }
                        i = j;
                    }
                }
                b'"' => {
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        if b[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                b'\'' => {
                    // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                    if b.get(i + 1) == Some(&b'\\') {
                        let mut j = i + 2;
                        while j < b.len() && b[j] != b'\'' && j < i + 12 {
                            j += 1;
                        }
                        i = j;
                    } else if b.get(i + 2) == Some(&b'\'') {
                        i += 2;
                    }
                }
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return Some((i, depth));
                    }
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// The table-driven guard agrees with the byte-at-a-time one on
    /// comments, strings (escapes, raw, unterminated), chars, lifetimes and
    /// on pseudo-random mixes of those bytes.
    #[test]
    fn guard_matches_the_reference() {
        let cases: Vec<&[u8]> = vec![
            b"",
            b"((()))",
            b"fn f() { g(h[1], {2}) }",
            b"// ((((( \n (((",
            b"/* ((( /* ((( */ ((( */ (((",
            b"\"(((\\\"(((\" (((",
            b"r#\"((( \"# (((",
            b"br##\"(\"#((\"## ((",
            b"'(' '\\'' '\\u{28}' 'a ((( 'static",
            b"\"unterminated (((",
            b"// no newline (((",
            b"r\"((( ",
            b"for_r\"x\" (((",
            b"\\",
        ];
        for c in &cases {
            for max in [0, 1, 2, 3, 100] {
                assert_eq!(
                    too_deep(c, max),
                    too_deep_reference(c, max),
                    "{:?} {max}",
                    String::from_utf8_lossy(c)
                );
            }
        }
        let alphabet = b"(){}[]/*\"'r#\\\n ab_";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for max in [1, 3] {
                assert_eq!(
                    too_deep(&v, max),
                    too_deep_reference(&v, max),
                    "{:?} {max}",
                    String::from_utf8_lossy(&v)
                );
            }
        }
    }
}

//! Recording what a process really publishes and subscribes: the input of
//! `gencreds coverage`, a dynamic check of the analyzer (every recorded
//! subject must be covered by the service's `nats.acl`).
//!
//! Off by default. With `BUSWARDEN_RECORD=<dir>` (or
//! [`crate::Connector::with_record_dir`]) each connector appends to
//! `<dir>/<hostname>.subjects` one line per distinct subject:
//! `<hostname> PUB <subject>` or `<hostname> SUB <subject>` (a subscription's
//! pattern, wildcards included). Each line is one `write` on a file opened
//! with `O_APPEND`, so replicas and processes sharing the folder never
//! interleave, and a process killed mid-run leaves whole lines (a reader
//! ignores a last line without its newline). A connector writes each
//! subject once (a set in memory) and at most [`MAX_SUBJECTS`] of them, so
//! leaving it on costs one set lookup per message.

use buswarden_rules::Hostname;
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Environment variable: the folder recordings are appended to.
pub const ENV_RECORD: &str = "BUSWARDEN_RECORD";

/// Distinct subjects one connector records at most; past it, one
/// `# truncated` line is written and recording stops.
pub const MAX_SUBJECTS: usize = 100_000;

/// The recording file of `hostname` in `dir`.
pub fn recording_path(dir: &Path, hostname: &str) -> PathBuf {
    dir.join(format!("{hostname}.subjects"))
}

/// One connector's recorder.
pub(crate) struct Recorder {
    host: String,
    state: Mutex<State>,
}

struct State {
    file: Option<std::fs::File>,
    seen: HashSet<String>,
}

impl Recorder {
    /// A recorder appending to `dir`, or `None` when the file cannot be
    /// opened (recording never stops a service: the reason is printed once).
    pub(crate) fn open(dir: &Path, host: &Hostname) -> Option<Recorder> {
        let path = recording_path(dir, host.as_str());
        let opened = std::fs::create_dir_all(dir).and_then(|()| {
            let mut o = std::fs::OpenOptions::new();
            o.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                o.mode(0o600);
            }
            o.open(&path)
        });
        match opened {
            Ok(file) => Some(Recorder {
                host: host.as_str().to_string(),
                state: Mutex::new(State {
                    file: Some(file),
                    seen: HashSet::new(),
                }),
            }),
            Err(e) => {
                eprintln!(
                    "buswarden: {ENV_RECORD}: cannot append to {}: {e}; not recording",
                    path.display()
                );
                None
            }
        }
    }

    /// Records that this connector published on `subject`.
    pub(crate) fn publish(&self, subject: &str) {
        self.record("PUB", subject);
    }

    /// Records that this connector subscribed to `subject` (a pattern).
    pub(crate) fn subscribe(&self, subject: &str) {
        self.record("SUB", subject);
    }

    fn record(&self, verb: &str, subject: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{verb} {subject}");
        if st.file.is_none() || st.seen.contains(&key) {
            return;
        }
        let line = if st.seen.len() >= MAX_SUBJECTS {
            format!("# {} truncated after {MAX_SUBJECTS} subjects\n", self.host)
        } else {
            format!("{} {key}\n", self.host)
        };
        let full = st.seen.len() >= MAX_SUBJECTS;
        let ok = st
            .file
            .as_mut()
            .is_some_and(|f| f.write_all(line.as_bytes()).is_ok());
        if !ok || full {
            st.file = None;
        }
        st.seen.insert(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each subject once, one whole line each, appended by two recorders
    /// (two processes of one host) without loss.
    #[test]
    fn appends_each_subject_once_as_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let host = Hostname::parse("a.example").unwrap();
        let one = Recorder::open(dir.path(), &host).unwrap();
        let two = Recorder::open(dir.path(), &host).unwrap();
        one.publish("p.safe.443.a_example.b_example._.GET.x");
        one.publish("p.safe.443.a_example.b_example._.GET.x");
        two.subscribe("p.safe.443.*.a_example._.GET.>");
        one.subscribe("p.safe.443.*.a_example._.GET.>");
        let text = std::fs::read_to_string(recording_path(dir.path(), "a.example")).unwrap();
        assert_eq!(
            text,
            "a.example PUB p.safe.443.a_example.b_example._.GET.x\n\
             a.example SUB p.safe.443.*.a_example._.GET.>\n\
             a.example SUB p.safe.443.*.a_example._.GET.>\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(recording_path(dir.path(), "a.example"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

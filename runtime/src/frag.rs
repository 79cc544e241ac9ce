//! Fragmentation of large bodies, as Microbus does it: a body larger than
//! the broker's `max_payload` minus 64 KiB travels as `n` messages, each a
//! full HTTP message with `Microbus-Fragment: i/n` and a slice of the body.
//!
//! This module owns the split, the reassembly of one body ([`Partial`],
//! fragments in order, bytes bounded) and the table of requests being
//! reassembled by a responder ([`InboundFrags`], bounded in entries and
//! bytes, entries dropped at their time budget). NATS delivers the messages
//! of one publisher to one subscriber in order, so fragments arrive in order;
//! anything else is refused.

use bytes::{Bytes, BytesMut};
use compact_str::CompactString;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// Room left in each message for the head: Microbus's 64 KiB.
const HEAD_ROOM: usize = 64 * 1024;

/// The largest body slice one message may carry under a broker
/// `max_payload`.
pub(crate) fn fragment_size(max_payload: usize) -> usize {
    if max_payload > 2 * HEAD_ROOM {
        max_payload - HEAD_ROOM
    } else {
        (max_payload / 2).max(1)
    }
}

/// The messages of one outgoing request or response: one (kept inline)
/// unless the body is large.
pub(crate) type Parts = smallvec::SmallVec<[Bytes; 1]>;

/// The slices of `body` of at most `size` bytes each: one, the whole
/// body, when it fits (an empty body is one empty slice). Slices, not
/// `Bytes`: each is copied into its message anyway, and a `Bytes` made
/// from a `Vec` with room to spare costs an allocation of its own.
pub(crate) fn slices(body: &[u8], size: usize) -> impl ExactSizeIterator<Item = &[u8]> {
    let size = size.max(1);
    let n = body.len().div_ceil(size).max(1);
    (0..n).map(move |i| &body[(i * size).min(body.len())..((i + 1) * size).min(body.len())])
}

/// Why a fragment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FragError {
    /// Out of order, or a different count than the first fragment said.
    Sequence,
    /// The body grew past the limit.
    TooLarge,
}

/// One body being reassembled.
#[derive(Debug)]
pub(crate) struct Partial {
    n: u32,
    parts: Vec<Bytes>,
    bytes: usize,
}

impl Partial {
    /// Starts with fragment 1 of `n`.
    pub(crate) fn new(n: u32) -> Self {
        Partial {
            n,
            parts: Vec::new(),
            bytes: 0,
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds fragment `i` of `n`; `Ok(true)` when the body is complete.
    pub(crate) fn add(
        &mut self,
        i: u32,
        n: u32,
        body: Bytes,
        max_bytes: usize,
    ) -> Result<bool, FragError> {
        if n != self.n || i as usize != self.parts.len() + 1 {
            return Err(FragError::Sequence);
        }
        if self.bytes + body.len() > max_bytes {
            return Err(FragError::TooLarge);
        }
        self.bytes += body.len();
        self.parts.push(body);
        Ok(i == n)
    }

    /// The whole body.
    pub(crate) fn assemble(self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.bytes);
        for p in self.parts {
            out.extend_from_slice(&p);
        }
        out.freeze()
    }
}

/// Most requests one connector reassembles at once.
pub(crate) const MAX_INBOUND: usize = 64;

struct Entry {
    partial: Partial,
    deadline: Instant,
}

/// The requests a responder is reassembling, keyed by caller instance and
/// message id. Bounded: at most [`MAX_INBOUND`] entries and `max_total`
/// bytes; an entry past its time budget is dropped when the table is next
/// touched.
#[derive(Default)]
pub(crate) struct InboundFrags {
    table: Mutex<HashMap<(CompactString, CompactString), Entry>>,
}

/// What a fragment of a request did.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// Stored; more to come.
    Stored,
    /// The last one: the whole body.
    Complete(Bytes),
    /// Refused (out of order, too large, table full, unknown message).
    Refused,
}

impl InboundFrags {
    /// Adds fragment `i` of `n` of message `key`.
    pub(crate) fn add(
        &self,
        key: (CompactString, CompactString),
        (i, n): (u32, u32),
        body: Bytes,
        deadline: Instant,
        max_body: usize,
        max_total: usize,
    ) -> Inbound {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        table.retain(|_, e| e.deadline > now);
        let held: usize = table.values().map(|e| e.partial.bytes()).sum();
        if held + body.len() > max_total {
            table.remove(&key);
            return Inbound::Refused;
        }
        if i == 1 {
            if table.len() >= MAX_INBOUND || table.contains_key(&key) {
                return Inbound::Refused;
            }
            let mut partial = Partial::new(n);
            if partial.add(1, n, body, max_body).is_err() {
                return Inbound::Refused;
            }
            table.insert(key, Entry { partial, deadline });
            return Inbound::Stored;
        }
        let Some(entry) = table.get_mut(&key) else {
            return Inbound::Refused;
        };
        match entry.partial.add(i, n, body, max_body) {
            Ok(false) => Inbound::Stored,
            Ok(true) => {
                let entry = table.remove(&key);
                drop(table);
                entry.map_or(Inbound::Refused, |e| {
                    Inbound::Complete(e.partial.assemble())
                })
            }
            Err(_) => {
                table.remove(&key);
                Inbound::Refused
            }
        }
    }

    /// Entries held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn split_and_reassemble_round_trip() {
        let body = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let parts = slices(&body, 3_000);
        assert_eq!(parts.len(), 4);
        let mut p = Partial::new(4);
        for (i, part) in parts.enumerate() {
            let done = p
                .add(i as u32 + 1, 4, Bytes::copy_from_slice(part), usize::MAX)
                .unwrap();
            assert_eq!(done, i == 3);
        }
        assert_eq!(p.assemble(), body);
        assert_eq!(slices(b"ab", 3).collect::<Vec<_>>(), [b"ab"]);
        assert_eq!(slices(b"", 3).collect::<Vec<_>>(), [b""]);
        assert_eq!(
            slices(b"abcdef", 3).collect::<Vec<_>>(),
            [&b"abc"[..], &b"def"[..]]
        );
        assert_eq!(slices(b"abcdefg", 3).len(), 3);
        assert_eq!(fragment_size(1024 * 1024), 1024 * 1024 - 64 * 1024);
        assert_eq!(fragment_size(100), 50);
    }

    #[test]
    fn fragments_out_of_order_or_over_the_limit_are_refused() {
        let mut p = Partial::new(3);
        assert_eq!(p.add(2, 3, Bytes::new(), 10), Err(FragError::Sequence));
        assert_eq!(p.add(1, 4, Bytes::new(), 10), Err(FragError::Sequence));
        assert_eq!(
            p.add(1, 3, Bytes::from_static(&[0; 11]), 10),
            Err(FragError::TooLarge)
        );
    }

    #[tokio::test]
    async fn the_inbound_table_is_bounded_and_expires() {
        let t = InboundFrags::default();
        let later = Instant::now() + Duration::from_secs(60);
        let key = |i: usize| {
            (
                CompactString::from(format!("id-{i}")),
                CompactString::from("m"),
            )
        };
        for i in 0..MAX_INBOUND {
            assert!(matches!(
                t.add(key(i), (1, 2), Bytes::from_static(b"ab"), later, 100, 1000),
                Inbound::Stored
            ));
        }
        assert!(matches!(
            t.add(key(999), (1, 2), Bytes::new(), later, 100, 1000),
            Inbound::Refused
        ));
        // Bytes over the table's total are refused.
        assert!(matches!(
            t.add(
                key(0),
                (2, 2),
                Bytes::from(vec![0; 1000]),
                later,
                10_000,
                1000
            ),
            Inbound::Refused
        ));
        match t.add(key(1), (2, 2), Bytes::from_static(b"cd"), later, 100, 1000) {
            Inbound::Complete(b) => assert_eq!(&b[..], b"abcd"),
            other => panic!("{other:?}"),
        }
        // Expired entries go at the next touch.
        let past = Instant::now();
        let t = InboundFrags::default();
        t.add(key(0), (1, 2), Bytes::new(), past, 100, 1000);
        t.add(key(1), (1, 2), Bytes::new(), later, 100, 1000);
        assert_eq!(t.len(), 1);
    }
}

//! Where outgoing messages and subjects are written: per-thread blocks of
//! shared memory that many messages are cut from.
//!
//! A message written into its own `Vec` costs two allocations before it
//! reaches the socket: the buffer, and the shared header `Bytes` puts on a
//! buffer whose length is not its capacity (and async-nats clones every
//! subject it is handed, which puts that header on a subject made from a
//! `String`). Here each thread keeps a block; a message is written at the
//! block's free end and cut off as a `Bytes` that shares the block, so a
//! small message costs no allocation and a clone of it is a reference
//! count. A block is freed when the last message cut from it is dropped.
//!
//! Two kinds of blocks, by how long what is cut from them lives:
//! - messages ([`take`], [`freeze`]): [`BLOCK`] bytes, about forty typical
//!   messages; a message lives until it is written to the socket;
//! - subjects ([`subject`]): [`SUBJECT_BLOCK`] bytes, about ten subjects; a
//!   subject lives as long as its call (the waiting call's entry and a
//!   handler's reply-to keep it), so a slow call holds at most this much.
//!
//! A message larger than a block gets a block of its own. A writer may move
//! between threads (it is plain `BytesMut`); the free end of its block goes
//! back to the thread it finishes on.

use bytes::{Bytes, BytesMut};
use std::cell::RefCell;

/// The size of a fresh message block: about forty typical messages.
pub(crate) const BLOCK: usize = 16 * 1024;

/// The size of a fresh subject block: about ten subjects.
pub(crate) const SUBJECT_BLOCK: usize = 1024;

type Slot = std::thread::LocalKey<RefCell<BytesMut>>;

thread_local! {
    /// The free end of this thread's message block.
    static FREE: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    /// The free end of this thread's subject block.
    static FREE_SUBJECTS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    /// A scratch string for subjects built by `buswarden_rules`.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// An empty buffer with room for at least `room` bytes, taken from this
/// thread's message block (or a new block when what is left is too small).
pub(crate) fn take(room: usize) -> BytesMut {
    take_from(&FREE, room, BLOCK)
}

/// What was written into `buf` (from [`take`]), as `Bytes`; the room
/// left after it goes back to this thread when it is more than the
/// thread has.
pub(crate) fn freeze(buf: BytesMut) -> Bytes {
    freeze_into(&FREE, buf)
}

fn take_from(slot: &'static Slot, room: usize, block: usize) -> BytesMut {
    let taken = slot
        .try_with(|free| {
            free.try_borrow_mut()
                .ok()
                .filter(|free| free.capacity() >= room)
                .map(|mut free| std::mem::take(&mut *free))
        })
        .ok()
        .flatten();
    taken.unwrap_or_else(|| BytesMut::with_capacity(room.max(block)))
}

fn freeze_into(slot: &'static Slot, mut buf: BytesMut) -> Bytes {
    let written = buf.split().freeze();
    let _ = slot.try_with(|free| {
        if let Ok(mut free) = free.try_borrow_mut()
            && buf.capacity() > free.capacity()
        {
            *free = buf;
        }
    });
    written
}

/// A subject built by `build` into a scratch string and copied into this
/// thread's subject block: no allocation for the string, and the clones
/// async-nats makes of it are reference counts.
pub(crate) fn subject(build: impl FnOnce(&mut String)) -> async_nats::Subject {
    let mut build = Some(build);
    let made = SCRATCH
        .try_with(|scratch| {
            let mut s = scratch.try_borrow_mut().ok()?;
            s.clear();
            (build.take()?)(&mut s);
            let mut buf = take_from(&FREE_SUBJECTS, s.len(), SUBJECT_BLOCK);
            buf.extend_from_slice(s.as_bytes());
            // A copy of a `str`: always UTF-8.
            Some(
                async_nats::Subject::from_utf8(freeze_into(&FREE_SUBJECTS, buf))
                    .unwrap_or_else(|_| async_nats::Subject::from(s.as_str())),
            )
        })
        .ok()
        .flatten();
    made.unwrap_or_else(|| {
        // Only when the scratch string is in use (never re-entered) or
        // this thread is exiting: a plain string.
        let mut s = String::new();
        if let Some(build) = build.take() {
            build(&mut s);
        }
        async_nats::Subject::from(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_share_a_block_and_keep_their_bytes() {
        let mut kept = Vec::new();
        for i in 0..200u32 {
            let mut b = take(64);
            b.extend_from_slice(format!("message {i}").as_bytes());
            kept.push(freeze(b));
        }
        for (i, b) in kept.iter().enumerate() {
            assert_eq!(&b[..], format!("message {i}").as_bytes());
        }
        // Cut from shared blocks: a clone is the same memory.
        let c = kept[7].clone();
        assert_eq!(c.as_ptr(), kept[7].as_ptr());
    }

    #[test]
    fn a_large_message_gets_its_own_block_and_writing_past_room_grows() {
        let mut b = take(BLOCK * 3);
        assert!(b.capacity() >= BLOCK * 3);
        b.extend_from_slice(&vec![7u8; BLOCK * 3]);
        let big = freeze(b);
        assert_eq!(big.len(), BLOCK * 3);
        let mut small = take(4);
        small.extend_from_slice(&vec![1u8; BLOCK * 2]);
        let small = freeze(small);
        assert_eq!(small.len(), BLOCK * 2);
        assert!(small.iter().all(|&x| x == 1) && big.iter().all(|&x| x == 7));
    }

    #[test]
    fn subjects_are_what_was_built_in_small_blocks() {
        let s = subject(|s| s.push_str("a.b.c"));
        let t = subject(|s| s.push_str("d.é"));
        assert_eq!((s.as_str(), t.as_str()), ("a.b.c", "d.é"));
        // A long-lived subject keeps at most a subject block alive: what
        // is left of the thread's block after it is within one.
        let left = FREE_SUBJECTS.with(|f| f.borrow().capacity());
        assert!(left < SUBJECT_BLOCK, "{left}");
        let long = "x".repeat(3 * SUBJECT_BLOCK);
        assert_eq!(subject(|s| s.push_str(&long)).as_str(), long);
    }
}

//! The reply pump: who reads the connector's one reply subscription.
//!
//! Nobody waits on it. The waker registered on the subscription is the
//! pump's own, not a task's: the NATS client's connection task wakes it each
//! time it hands a reply over, and waking it drains the subscription then
//! and there, on that task, handing each reply to its call's channel (which
//! wakes the call). A reply so reaches its call with one task wake-up, as
//! async-nats's own request muxer does, with no reader task to schedule in
//! between, and no call can stall another: a call that stops being polled
//! only leaves its own reply in its own channel.
//!
//! A wake that finds another thread draining leaves a mark that the drainer
//! checks before it lets go, so no reply is left unread. The drain runs
//! outside tokio's cooperative budget: a budget spent by the connection
//! task must not make the subscription look empty.

use crate::connector::{ReplyShape, Shared};
use futures_util::StreamExt as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError, Weak};
use std::task::{Context, Poll, Wake, Waker};

/// The reply subscription, read by whoever wakes it.
pub(crate) struct ReplyPump {
    /// `None` once the subscription has ended.
    subscription: Mutex<Option<async_nats::Subscriber>>,
    /// Set by every wake; cleared by the drainer before each pass.
    again: AtomicBool,
    shared: Arc<Shared>,
    shape: ReplyShape,
    waker: Waker,
}

/// The waker registered on the subscription. It holds the pump weakly: the
/// subscription's channel keeps the waker, and the pump keeps the channel.
struct PumpWaker(Weak<ReplyPump>);

impl Wake for PumpWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(pump) = self.0.upgrade() {
            pump.drain();
        }
    }
}

impl ReplyPump {
    /// Starts reading `subscription`: replies already received are
    /// dispatched now, later ones as they arrive.
    pub(crate) fn start(
        subscription: async_nats::Subscriber,
        shape: ReplyShape,
        shared: Arc<Shared>,
    ) -> Arc<Self> {
        let pump = Arc::new_cyclic(|me| ReplyPump {
            subscription: Mutex::new(Some(subscription)),
            again: AtomicBool::new(false),
            shared,
            shape,
            waker: Waker::from(Arc::new(PumpWaker(me.clone()))),
        });
        pump.drain();
        pump
    }

    /// Dispatches every reply received so far and registers the pump's
    /// waker for the next. Returns at once when another thread is draining
    /// (it sees the mark and passes again).
    fn drain(&self) {
        self.again.store(true, Ordering::SeqCst);
        loop {
            let mut subscription = match self.subscription.try_lock() {
                Ok(guard) => guard,
                // The holder checks `again` before it lets go.
                Err(TryLockError::WouldBlock) => return,
                // A panic while dispatching: the subscription itself is
                // intact.
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
            };
            while self.again.swap(false, Ordering::SeqCst) {
                let Some(sub) = subscription.as_mut() else {
                    return;
                };
                if self.read(sub) {
                    *subscription = None;
                    return;
                }
            }
            drop(subscription);
            if !self.again.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Reads until the subscription is empty (`false`) or has ended
    /// (`true`), outside the cooperative budget of the task that woke it.
    fn read(&self, sub: &mut async_nats::Subscriber) -> bool {
        let mut cx = Context::from_waker(&self.waker);
        let read = tokio::task::unconstrained(std::future::poll_fn(|cx| {
            loop {
                match sub.poll_next_unpin(cx) {
                    Poll::Ready(Some(msg)) => self.shared.dispatch_reply(msg, &self.shape),
                    Poll::Ready(None) => return Poll::Ready(true),
                    Poll::Pending => return Poll::Ready(false),
                }
            }
        }));
        match std::pin::pin!(read).poll(&mut cx) {
            Poll::Ready(ended) => ended,
            Poll::Pending => false,
        }
    }
}

//! The reply pump: who reads the connector's one reply subscription.
//!
//! A background task always reads it, so no reply ever waits for a reader.
//! A call that is the only one waiting reads the subscription itself when
//! it is polled (a short, non-blocking drain under a lock that is never held
//! across an await) and registers its own waker there: a lone call is woken
//! by its own reply and handles it in its own task, with no task hop, and it
//! hands the subscription back to the background reader when it ends. While
//! several calls wait, the subscription wakes the background reader alone,
//! which hands each reply to its call's channel; a waiting call then never
//! is woken by another call's reply, and a call that stops being polled (a
//! future kept but no longer awaited) can never stall the others.

use crate::connector::{ReplyShape, Shared};
use futures_util::StreamExt as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

/// The reply subscription and the background reader's waker.
pub(crate) struct ReplyPump {
    subscription: Mutex<async_nats::Subscriber>,
    background: OnceLock<Waker>,
    shape: ReplyShape,
}

impl ReplyPump {
    pub(crate) fn new(subscription: async_nats::Subscriber, shape: ReplyShape) -> Self {
        ReplyPump {
            subscription: Mutex::new(subscription),
            background: OnceLock::new(),
            shape,
        }
    }

    /// Dispatches every reply already received; registers `waker` for the
    /// next. Returns `true` when the subscription has ended. When another
    /// reader is draining at this instant, returns at once (that reader
    /// dispatches, and its waker includes the background reader).
    fn drain(&self, shared: &Shared, waker: &Waker) -> bool {
        let Ok(mut subscription) = self.subscription.try_lock() else {
            return false;
        };
        let mut cx = Context::from_waker(waker);
        loop {
            match subscription.poll_next_unpin(&mut cx) {
                Poll::Ready(Some(msg)) => shared.dispatch_reply(msg, &self.shape),
                Poll::Ready(None) => return true,
                Poll::Pending => return false,
            }
        }
    }

    /// The background reader: runs until the subscription ends.
    pub(crate) fn background(
        self: Arc<Self>,
        shared: Arc<Shared>,
    ) -> impl Future<Output = ()> + Send {
        std::future::poll_fn(move |cx| {
            let _ = self.background.set(cx.waker().clone());
            if self.drain(&shared, cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Waits for `fut` (a call's own reply channel), reading replies itself
    /// while it waits.
    pub(crate) fn wait<'a, F: Future + Unpin + 'a>(
        &'a self,
        shared: &'a Shared,
        fut: F,
    ) -> impl Future<Output = F::Output> + 'a {
        Wait {
            pump: self,
            shared,
            fut,
            lone: false,
        }
    }
}

struct Wait<'a, F> {
    pump: &'a ReplyPump,
    shared: &'a Shared,
    fut: F,
    /// Whether the subscription's registered waker is this call's alone.
    lone: bool,
}

impl<F> Drop for Wait<'_, F> {
    /// Hands the subscription back to the background reader when this call
    /// was its lone reader, so replies that arrive later (late or
    /// unmatched ones) are still read.
    fn drop(&mut self) {
        if self.lone
            && let Some(background) = self.pump.background.get()
        {
            self.pump.drain(self.shared, background);
        }
    }
}

impl<F: Future + Unpin> Future for Wait<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Poll::Ready(out) = Pin::new(&mut self.fut).poll(cx) {
            return Poll::Ready(out);
        }
        // A lone waiting call reads for itself and wakes only itself: no
        // other call can be stalled by it, and a call that starts later
        // inserts itself first and then registers its own waker. With other
        // calls waiting, the background reader is woken by every reply too.
        if self.shared.waiting_calls() <= 1 {
            self.pump.drain(self.shared, cx.waker());
            // A call that started meanwhile may have found the lock taken
            // and left the registration to this drain: include the
            // background reader then.
            if self.shared.waiting_calls() <= 1 {
                self.lone = true;
                return Pin::new(&mut self.fut).poll(cx);
            }
        }
        // Several calls waiting: the background reader alone is woken by
        // the subscription and hands each reply to its call, which its own
        // channel then wakes. Waking a waiting call as well on every reply
        // would wake calls whose reply has not come (measured: more task
        // polls and lock races per call under load).
        self.lone = false;
        match self.pump.background.get() {
            Some(background) => {
                self.pump.drain(self.shared, background);
            }
            // Not started yet: the background reader registers itself on
            // its first poll, which is already scheduled.
            None => return Poll::Pending,
        }
        Pin::new(&mut self.fut).poll(cx)
    }
}

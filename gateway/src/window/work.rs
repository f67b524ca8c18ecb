//! A message's work, driven by the attempt that started it while that
//! attempt waits for the reply, and a task of its own once the attempt ends
//! first: held, answered with the interim, or dropped when WeChat hung up.
//!
//! Most replies are given by the attempt that started the work, which is
//! polling anyway. A task per message cost a spawn, a wake-up across tasks
//! (often across threads) for the reply, and a cold task to schedule.

use std::{
    convert::Infallible,
    task::{Context, Poll, Waker},
};

use futures::{FutureExt, future::BoxFuture};
use tokio_util::task::{TaskTracker, task_tracker::TrackedFuture};

/// The rest of a message's work; whatever is left of it when this is
/// dropped goes on as a task.
pub(super) struct Work {
    future: Option<TrackedFuture<BoxFuture<'static, ()>>>,
}

impl Work {
    /// `work`, counted by `tracker` from now on, so that a stop waits for it
    /// wherever it runs.
    pub(super) fn new(tracker: &TaskTracker, work: BoxFuture<'static, ()>) -> Self {
        Self {
            future: Some(tracker.track_future(work)),
        }
    }

    /// Runs the work to its end, then never returns: polled beside what the
    /// attempt waits for, and stopped when the attempt stops waiting.
    pub(super) async fn drive(&mut self) -> Infallible {
        if let Some(future) = &mut self.future {
            future.await;
            self.future = None;
        }
        std::future::pending().await
    }

    /// Leaves the rest of the work to a task of its own.
    pub(super) fn detach(self) {
        drop(self);
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let Some(mut future) = self.future.take() else {
            return;
        };
        // Polled once more first: the attempt that gave the reply has just
        // decided what the work waits for last (the reply's fate), so it
        // usually ends here, without a task.
        if let Poll::Ready(()) = future.poll_unpin(&mut Context::from_waker(Waker::noop())) {
            return;
        }
        // Without a runtime the process is ending, and the work with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn work_left_by_its_attempt_runs_to_its_end() {
        let tracker = TaskTracker::new();
        let go = Arc::new(Notify::new());
        let done = Arc::new(AtomicBool::new(false));
        let (wait, finish) = (go.clone(), done.clone());
        let mut work = Work::new(
            &tracker,
            Box::pin(async move {
                wait.notified().await;
                finish.store(true, Ordering::SeqCst);
            }),
        );
        // The attempt stops waiting before the work is done.
        tokio::select! {
            never = work.drive() => match never {},
            () = tokio::task::yield_now() => {}
        }
        work.detach();
        tracker.close();
        assert!(!done.load(Ordering::SeqCst));
        go.notify_one();
        tracker.wait().await;
        assert!(done.load(Ordering::SeqCst), "the work finished on its own");
    }

    #[tokio::test]
    async fn work_driven_to_its_end_needs_no_task() {
        let tracker = TaskTracker::new();
        let mut work = Work::new(&tracker, Box::pin(async {}));
        tokio::select! {
            never = work.drive() => match never {},
            () = tokio::task::yield_now() => {}
        }
        assert!(work.future.is_none());
        drop(work);
        tracker.close();
        assert!(tracker.is_empty());
    }
}

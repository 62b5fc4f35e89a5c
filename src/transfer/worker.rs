//! The one shape of tern's blocking workers (reading files out, writing them in): a thread of
//! its own that takes jobs in batches, in order, and answers with batches of events. Batches,
//! because a wake-up per job would cost more than the job for small files. Dropping the
//! [`Worker`] lets the thread finish what is queued and end.
//!
//! What bounds the work queued is the caller's business (credit, a backlog count): the queue
//! itself must take whatever the session hands it without blocking the session's thread.

use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

/// What a worker thread does with its jobs.
pub trait Work: Send + 'static {
    type Job: Send + 'static;
    type Event: Send + 'static;

    /// Carry out everything queued, in order; what to report, if anything (an empty batch
    /// still wakes whoever waits for the work to be done).
    fn batch(&mut self, jobs: Vec<Self::Job>) -> Option<Vec<Self::Event>>;

    /// How long without a job before [`Work::idle`] is called, if ever.
    fn idle_after(&self) -> Option<Duration> {
        None
    }

    /// Nothing came for [`Work::idle_after`]: let go of what is held for the next job.
    fn idle(&mut self) {}
}

/// The sending end of a worker thread.
pub struct Worker<J> {
    jobs: mpsc::Sender<Vec<J>>,
}

impl<J: Send + 'static> Worker<J> {
    /// Start a thread called `name` doing `work`; its reports go to `events`. The thread runs
    /// at the priority of bulk work (`platform::sched::bulk_thread`).
    pub fn start<W: Work<Job = J>>(
        name: &str,
        work: W,
        events: UnboundedSender<Vec<W::Event>>,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                crate::platform::sched::bulk_thread();
                run(work, &queue, &events);
            })?;
        Ok(Self { jobs })
    }

    /// Queue jobs, in order; `false` if the thread is gone (it never stops while this is
    /// held, short of a panic, which the caller reports as a failure).
    pub fn send(&self, jobs: Vec<J>) -> bool {
        self.jobs.send(jobs).is_ok()
    }
}

fn run<W: Work>(
    mut work: W,
    queue: &mpsc::Receiver<Vec<W::Job>>,
    events: &UnboundedSender<Vec<W::Event>>,
) {
    loop {
        let first = match work.idle_after() {
            Some(after) => match queue.recv_timeout(after) {
                Ok(batch) => Ok(batch),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    work.idle();
                    queue.recv()
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
            None => queue.recv(),
        };
        let Ok(mut batch) = first else { return };
        // Whatever else is queued too: one wake-up and one report for the lot.
        while let Ok(more) = queue.try_recv() {
            batch.extend(more);
        }
        // Whoever asked may be gone; the queue is finished anyway (what was handed over is
        // carried out: a file received is written).
        if let Some(done) = work.batch(batch) {
            let _ = events.send(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles numbers; says when it was idle.
    struct Doubler {
        idled: usize,
    }

    impl Work for Doubler {
        type Job = u32;
        type Event = u64;

        fn batch(&mut self, jobs: Vec<u32>) -> Option<Vec<u64>> {
            let mut out: Vec<u64> = jobs.into_iter().map(|j| u64::from(j) * 2).collect();
            if self.idled > 0 {
                out.push(u64::MAX - self.idled as u64);
            }
            Some(out)
        }

        fn idle_after(&self) -> Option<Duration> {
            Some(Duration::from_millis(20))
        }

        fn idle(&mut self) {
            self.idled += 1;
        }
    }

    #[test]
    fn jobs_are_done_in_order_and_reported_in_batches() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let worker = Worker::start("test-worker", Doubler { idled: 0 }, tx).expect("start");
        assert!(worker.send(vec![1, 2]));
        assert!(worker.send(vec![3]));
        let mut got = Vec::new();
        while got.len() < 3 {
            let batch = rx.blocking_recv().expect("a report");
            got.extend(batch.into_iter().filter(|&v| v < 1000));
        }
        assert_eq!(got, [2, 4, 6]);
        // Idle past the timeout: a later batch says so (however late the thread wakes).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            assert!(worker.send(vec![5]));
            let batch = rx.blocking_recv().expect("a report");
            assert_eq!(batch[0], 10);
            if batch.len() == 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "idle was never called"
            );
        }
        // Dropping the worker ends the thread: the events channel closes.
        drop(worker);
        assert!(rx.blocking_recv().is_none());
    }
}

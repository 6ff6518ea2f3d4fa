//! Which queued records form the next batch, and when it starts.
//!
//! A batch starts at once when no other batch is committing: a record never waits for company.
//! While one is committing, another starts only once enough records wait to fill it
//! (`parallel_min`); until then they wait for the batch in flight to end and go together. Each
//! statement costs PostgreSQL a fixed ~170 µs plus ~40 µs per record (server README,
//! "Benchmark"), so two small batches in parallel cost more than one twice their size: at 8
//! clients every batch of two records beside another measured 0.72× pgbench, one batch at a
//! time 0.8×, where at 64 clients the second batch in flight is worth 1.6× (it is always full).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, Mutex, Notify};
use tokio::time::{timeout_at, Instant};

/// How a batch is gathered.
#[derive(Debug, Clone, Copy)]
pub struct GatherOptions {
    /// Records in one batch at most.
    pub max_records: usize,
    /// After the first record, how long to wait for more (0: take what is queued).
    pub max_wait: Duration,
    /// Records that must be waiting for a batch to start while another is committing.
    pub parallel_min: usize,
}

/// The queue the committing tasks take their batches from.
pub struct Gather<J> {
    rx: Mutex<mpsc::Receiver<J>>,
    in_flight: AtomicUsize,
    /// A batch ended (its `InFlight` dropped).
    ended: Notify,
    options: GatherOptions,
}

/// A batch being committed; dropping it lets the next one start.
pub struct InFlight<'a, J> {
    gather: &'a Gather<J>,
    pub jobs: Vec<J>,
}

impl<J> Drop for InFlight<'_, J> {
    fn drop(&mut self) {
        self.gather.in_flight.fetch_sub(1, Ordering::AcqRel);
        // A permit is kept when nobody waits yet, so the end is never missed.
        self.gather.ended.notify_one();
    }
}

impl<J> Gather<J> {
    pub fn new(rx: mpsc::Receiver<J>, options: GatherOptions) -> Self {
        Self {
            rx: Mutex::new(rx),
            in_flight: AtomicUsize::new(0),
            ended: Notify::new(),
            options,
        }
    }

    /// The next batch, once it may start; `None` once the queue is closed and empty.
    /// One caller gathers at a time; the others wait for it to hand its batch over.
    pub async fn next(&self) -> Option<InFlight<'_, J>> {
        let max = self.options.max_records.max(1);
        let mut rx = self.rx.lock().await;
        let mut jobs = Vec::new();
        let mut closed = false;
        loop {
            while jobs.len() < max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed || jobs.len() >= max {
                break;
            }
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let alone = self.in_flight.load(Ordering::Acquire) == 0;
            if !jobs.is_empty() && (alone || jobs.len() >= self.options.parallel_min) {
                break;
            }
            tokio::select! {
                biased;
                job = rx.recv() => match job {
                    Some(job) => jobs.push(job),
                    None => {
                        closed = true;
                        break;
                    }
                },
                () = &mut ended => {}
            }
        }
        if jobs.is_empty() {
            return None;
        }
        if !closed && jobs.len() < max && !self.options.max_wait.is_zero() {
            let deadline = Instant::now() + self.options.max_wait;
            while jobs.len() < max {
                match timeout_at(deadline, rx.recv()).await {
                    Ok(Some(job)) => jobs.push(job),
                    _ => break,
                }
            }
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        drop(rx);
        Some(InFlight { gather: self, jobs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gather(parallel_min: usize) -> (mpsc::Sender<u32>, Gather<u32>) {
        let (tx, rx) = mpsc::channel(100);
        let options = GatherOptions {
            max_records: 5,
            max_wait: Duration::ZERO,
            parallel_min,
        };
        (tx, Gather::new(rx, options))
    }

    #[tokio::test]
    async fn a_record_alone_starts_at_once() {
        let (tx, g) = gather(4);
        tx.send(1).await.unwrap();
        assert_eq!(g.next().await.unwrap().jobs, vec![1]);
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_its_size() {
        let (tx, g) = gather(4);
        for i in 0..7 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(g.next().await.unwrap().jobs, vec![0, 1, 2, 3, 4]);
        assert_eq!(g.next().await.unwrap().jobs, vec![5, 6]);
    }

    #[tokio::test]
    async fn beside_a_batch_in_flight_a_few_records_wait_for_it_to_end() {
        let (tx, g) = gather(3);
        tx.send(1).await.unwrap();
        let first = g.next().await.unwrap();
        tx.send(2).await.unwrap();
        tx.send(3).await.unwrap();
        let second = async { std::mem::take(&mut g.next().await.unwrap().jobs) };
        tokio::pin!(second);
        // Two records beside a batch in flight: no second batch yet.
        assert!(futures_poll_once(second.as_mut()).await.is_none());
        drop(first);
        assert_eq!(second.await, vec![2, 3]);
    }

    #[tokio::test]
    async fn beside_a_batch_in_flight_enough_records_start_another() {
        let (tx, g) = gather(3);
        tx.send(1).await.unwrap();
        let _first = g.next().await.unwrap();
        tx.send(2).await.unwrap();
        tx.send(3).await.unwrap();
        let second = async { std::mem::take(&mut g.next().await.unwrap().jobs) };
        tokio::pin!(second);
        assert!(futures_poll_once(second.as_mut()).await.is_none());
        tx.send(4).await.unwrap();
        assert_eq!(second.await, vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn a_closed_queue_hands_over_what_is_left_then_ends() {
        let (tx, g) = gather(3);
        tx.send(1).await.unwrap();
        let first = g.next().await.unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        assert_eq!(g.next().await.unwrap().jobs, vec![2]);
        drop(first);
        assert!(g.next().await.is_none());
    }

    /// Polls a future once: `Some` if it is ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}

//! A fixed set of worker threads for the server's CPU-heavy requests
//! (queries, matches, genre, the decoding and encoding of uploads).
//!
//! tokio's blocking pool starts a new thread whenever all are busy and lets
//! idle ones exit after 10 s, so over minutes many threads each decode a
//! song; glibc's malloc gives each its arena (up to 8 per core) and every
//! arena keeps its largest past use. Under uploads and deletes the server
//! grew by about 0.4 MB/s and never levelled off (docs/reliability.md).
//! The same threads all the time bound that to `workers` arenas. The
//! library's own changes (commits, deletes, compactions, saves, reopening)
//! run on one more such pool of a single thread, so that the long-lived
//! index structures they build come from one arena too.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// `n` named threads taking jobs from one queue.
pub struct WorkerPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl WorkerPool {
    /// Starts `n` (at least 1) threads named `name-0`, `name-1`, ….
    pub fn new(n: usize, name: &str) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                loop {
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return, // the pool is gone
                    };
                    job();
                }
            })?;
        }
        Ok(Self { jobs: Mutex::new(tx) })
    }

    /// Runs `f` on a worker; `Err` with the panic's message if it panicked.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a worker panicked".into())
            });
            let _ = tx.send(out);
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| "the worker threads are gone".to_string())?;
        rx.await.map_err(|_| "a worker dropped its job".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_same_threads_and_panics_are_errors() {
        let pool = WorkerPool::new(2, "sampleid-worker").unwrap();
        let mut names = std::collections::HashSet::new();
        for _ in 0..20 {
            names.insert(
                pool.run(|| std::thread::current().name().unwrap().to_string())
                    .await
                    .unwrap(),
            );
        }
        assert!(
            names.len() <= 2 && names.iter().all(|n| n.starts_with("sampleid-worker-")),
            "{names:?}"
        );
        let e = pool.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert_eq!(e, "boom");
        assert_eq!(pool.run(|| 7).await.unwrap(), 7, "a panic does not take a worker down");
    }
}

//! Password hashing off the async workers, on a bounded pool of threads sized to the cores.
//!
//! argon2id at the default cost takes tens of milliseconds of one core. Running it on a
//! Tokio worker would stall every other request on that worker; running it unbounded on
//! the blocking pool would let a login flood start hundreds of hashes at once and starve
//! the workers of CPU. So at most `permits` hashes run at a time; the rest wait (without
//! holding a thread), and when too many are waiting the request is refused with 503 so
//! that latency stays bounded instead of the queue.
//!
//! The pool's threads are dedicated and long-lived: argon2 allocates its 19 MiB working
//! memory per hash, and an allocator keeps that memory in per-thread arenas, so hashing on
//! an ever-changing set of blocking threads would grow the process by 19 MiB per thread
//! ever used. A fixed set of threads bounds it to 19 MiB per core.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sesame_domain::password::{HashError, PasswordHasher};
use tokio::sync::Semaphore;
use tracing::Span;

use crate::error::CoreError;

/// The bounded hashing pool.
#[derive(Clone)]
pub struct HashingPool {
    hasher: PasswordHasher,
    threads: Arc<rayon::ThreadPool>,
    permits: Arc<Semaphore>,
    /// Taken by non-login work before a thread: at most half the threads (at least one)
    /// ever go to it, so logins always have the rest.
    other_permits: Arc<Semaphore>,
    size: usize,
    /// Jobs running or waiting for a permit.
    queued: Arc<AtomicUsize>,
    /// Of those, the jobs that are not password logins.
    queued_other: Arc<AtomicUsize>,
    max_queued: usize,
}

/// Which share of the queue a job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A password login: the whole queue.
    Login,
    /// Anything else (registration, password change): at most half the queue and half
    /// the threads (at least one), so a flood of them can never take the places, nor the
    /// threads, logins need.
    Other,
}

/// Decrements the queue count however the job ends (including cancellation).
struct QueueSlot(Arc<AtomicUsize>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for HashingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingPool")
            .field("hasher", &self.hasher)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl HashingPool {
    /// A pool running `size` hashes at once (at least one) and keeping at most 64 per
    /// slot waiting.
    ///
    /// # Panics
    /// If the operating system refuses to start the pool's threads.
    #[allow(clippy::expect_used)]
    pub fn new(hasher: PasswordHasher, size: usize) -> Self {
        let size = size.max(1);
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(size)
            .thread_name(|i| format!("sesame-hash-{i}"))
            // A panicking job fails its own request (its result channel closes); the pool
            // and the process carry on.
            .panic_handler(|_| tracing::error!("a password hashing job panicked"))
            .build()
            .expect("cannot start the password hashing threads");
        Self {
            hasher,
            threads: Arc::new(threads),
            permits: Arc::new(Semaphore::new(size)),
            other_permits: Arc::new(Semaphore::new((size / 2).max(1))),
            size,
            queued: Arc::new(AtomicUsize::new(0)),
            queued_other: Arc::new(AtomicUsize::new(0)),
            max_queued: size * 64,
        }
    }

    /// A pool with one slot per available core.
    pub fn for_this_machine(hasher: PasswordHasher) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::new(hasher, cores)
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Jobs running or waiting right now.
    pub fn in_flight(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Runs a password login's `job` on the pool, carrying the caller's tracing span
    /// across.
    pub async fn run<T, F>(&self, job: F) -> Result<T, CoreError>
    where
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run_in(Lane::Login, job).await
    }

    /// Runs `job` on the pool in `lane`.
    pub async fn run_in<T, F>(&self, lane: Lane, job: F) -> Result<T, CoreError>
    where
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
        T: Send + 'static,
    {
        let other_slot = match lane {
            Lane::Login => None,
            Lane::Other => {
                if self.queued_other.fetch_add(1, Ordering::AcqRel) >= self.max_queued / 2 {
                    self.queued_other.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!("hashing queue's share for non-login work full; refusing request");
                    return Err(CoreError::Unavailable(None));
                }
                Some(QueueSlot(self.queued_other.clone()))
            }
        };
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("hashing queue full; refusing request");
            return Err(CoreError::Unavailable(None));
        }
        let slot = (QueueSlot(self.queued.clone()), other_slot);
        let other_permit = match lane {
            Lane::Login => None,
            Lane::Other => Some(
                self.other_permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(CoreError::internal)?,
            ),
        };
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(CoreError::internal)?;
        let permit = (permit, other_permit);
        let hasher = self.hasher.clone();
        let span = Span::current();
        let (done, result) = tokio::sync::oneshot::channel();
        self.threads.spawn(move || {
            let result = span.in_scope(|| job(&hasher));
            // Free the slot before answering, so that whoever reads the result sees the
            // job gone from the pool.
            drop(permit);
            drop(slot);
            let _ = done.send(result);
        });
        result
            .await
            .map_err(|_| CoreError::internal(std::io::Error::other("a hashing job was dropped")))
    }

    /// Hashes a new password on the pool (registration, password change: [`Lane::Other`]).
    pub async fn hash(&self, password: sesame_domain::Password) -> Result<String, CoreError> {
        self.run_in(Lane::Other, move |hasher| hasher.hash(&password))
            .await?
            .map_err(|e: HashError| CoreError::internal(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Job = tokio::task::JoinHandle<Result<(), CoreError>>;

    /// A pool of `threads`, one of whose threads is held by other work until `release`
    /// is sent.
    async fn held_pool(threads: usize) -> (HashingPool, std::sync::mpsc::Sender<()>, Job) {
        let pool = HashingPool::new(
            PasswordHasher::new(sesame_domain::password::HashParams::default()).expect("params"),
            threads,
        );
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run_in(Lane::Other, move |_| {
                    let _ = gate.recv();
                })
                .await
            })
        };
        while pool.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        (pool, release, blocker)
    }

    #[tokio::test]
    async fn other_work_takes_at_most_half_the_threads_and_logins_the_rest() {
        let (pool, release, blocker) = held_pool(2).await;
        // A second piece of other work waits for the first, though a thread is free...
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run_in(Lane::Other, |_| ()).await })
        };
        // ...which a login takes at once.
        let login = tokio::time::timeout(std::time::Duration::from_secs(5), pool.run(|_| 7)).await;
        assert_eq!(login.expect("a login is not kept waiting").expect("hashed"), 7);
        assert!(!second.is_finished());
        release.send(()).expect("release");
        blocker.await.expect("join").expect("blocker");
        second.await.expect("join").expect("second");
    }

    #[tokio::test]
    async fn other_work_takes_at_most_half_the_queue_and_logins_the_rest() {
        // One job holds the only thread; everything else waits in the queue.
        let (pool, release, blocker) = held_pool(1).await;
        let mut waiting = Vec::new();
        for _ in 1..pool.max_queued / 2 {
            let pool = pool.clone();
            waiting.push(tokio::spawn(async move { pool.run_in(Lane::Other, |_| ()).await }));
        }
        while pool.in_flight() < pool.max_queued / 2 {
            tokio::task::yield_now().await;
        }
        // Half the queue is other work: more of it is refused, a login is not.
        assert!(matches!(
            pool.run_in(Lane::Other, |_| ()).await,
            Err(CoreError::Unavailable(None))
        ));
        let login = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|_| 7).await })
        };
        while pool.in_flight() < pool.max_queued / 2 + 1 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        assert_eq!(login.await.expect("join").expect("login hashed"), 7);
        blocker.await.expect("join").expect("blocker");
        for job in waiting {
            job.await.expect("join").expect("queued job");
        }
    }
}

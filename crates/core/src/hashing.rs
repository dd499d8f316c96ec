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
    size: usize,
    /// Jobs running or waiting for a permit.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
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
            size,
            queued: Arc::new(AtomicUsize::new(0)),
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

    /// Runs `job` on the pool, carrying the caller's tracing span across.
    pub async fn run<T, F>(&self, job: F) -> Result<T, CoreError>
    where
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("hashing queue full; refusing request");
            return Err(CoreError::Unavailable(None));
        }
        let slot = QueueSlot(self.queued.clone());
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(CoreError::internal)?;
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

    /// Hashes a new password on the pool.
    pub async fn hash(&self, password: sesame_domain::Password) -> Result<String, CoreError> {
        self.run(move |hasher| hasher.hash(&password))
            .await?
            .map_err(|e: HashError| CoreError::internal(e))
    }
}

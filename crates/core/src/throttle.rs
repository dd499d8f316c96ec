//! Login throttling against the shared database: every instance reads and writes the
//! same failure log, so the budgets hold across a fleet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sesame_domain::throttle::combine;
use sesame_domain::{ThrottleKey, ThrottlePolicy, ThrottleVerdict};
use sesame_storage::Store;
use time::OffsetDateTime;

use crate::cache::TtlCache;
use crate::clock::SharedClock;
use crate::error::CoreError;

/// The throttle: budgets, the shared failure log, and the memo of clean checks.
pub struct Throttle {
    policy: ThrottlePolicy,
    store: Store,
    clock: SharedClock,
    memo: CleanMemo,
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy, store: Store, clock: SharedClock) -> Self {
        Self {
            policy,
            store,
            clock,
            memo: CleanMemo::default(),
        }
    }

    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    /// An attempt on `account` from `ip`.
    pub fn attempt(&self, account: &str, ip: &str) -> Attempt<'_> {
        Attempt {
            throttle: self,
            account: account.to_owned(),
            ip: ip.to_owned(),
            had_failures: AtomicBool::new(true),
            remembered: false,
        }
    }

    /// The same, for a caller whose every success is cheap and frequent (an API-key
    /// exchange): a clean check is remembered for [`CLEAN_MEMO_TTL`], so a busy client
    /// does not read the failure log on every request. See [`CleanMemo`] for the bound.
    pub fn remembered_attempt(&self, account: &str, ip: &str) -> Attempt<'_> {
        Attempt {
            remembered: true,
            ..self.attempt(account, ip)
        }
    }

    /// Deletes failures older than every window.
    pub async fn prune(&self) -> Result<(), CoreError> {
        let cutoff = self.clock.now() - self.policy.longest_window();
        self.store.throttle.prune_failures(cutoff).await?;
        Ok(())
    }
}

/// The throttle charges for one attempt on `account` from `ip`.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    account: String,
    ip: String,
    /// Whether `check` saw failures under the (account, IP) key, so that a success only
    /// writes when there is something to forget.
    had_failures: AtomicBool,
    /// Whether `check` may trust the [`CleanMemo`].
    remembered: bool,
}

impl Attempt<'_> {
    fn keys(&self) -> Vec<ThrottleKey> {
        self.throttle
            .policy
            .charges(&self.account, &self.ip)
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// Refuses the attempt with 429 if any budget is spent, whatever the credentials.
    ///
    /// Concurrent attempts may all pass this check before any records a failure, so a
    /// budget can be overshot by the number of attempts in flight at once (bounded by the
    /// hashing pool's queue); the next attempt after them is refused.
    pub async fn check(&self) -> Result<(), CoreError> {
        let pair = ThrottleKey::account_ip(&self.account, &self.ip);
        let memo = &self.throttle.memo;
        let now = self.throttle.clock.now();
        if self.remembered && memo.is_clean(&pair, now) {
            self.had_failures.store(false, Ordering::Relaxed);
            return Ok(());
        }
        let generation = memo.generation();
        let policy = self.throttle.policy;
        let charges = policy.charges(&self.account, &self.ip);
        let keys: Vec<ThrottleKey> = charges.iter().map(|(key, _)| key.clone()).collect();
        let failures = self
            .throttle
            .store
            .throttle
            .recent_failures(&keys, now - policy.longest_window())
            .await?;
        self.had_failures
            .store(failures.iter().any(|(k, _)| k == pair.as_str()), Ordering::Relaxed);
        if self.remembered && failures.is_empty() {
            memo.remember(pair, generation, now);
        }
        let verdict = combine(charges.iter().map(|(key, budget)| {
            let times: Vec<OffsetDateTime> = failures
                .iter()
                .filter(|(k, _)| k == key.as_str())
                .map(|(_, at)| *at)
                .collect();
            budget.judge(&times, now)
        }));
        match verdict {
            ThrottleVerdict::Allowed => Ok(()),
            ThrottleVerdict::Throttled { retry_after } => {
                tracing::info!(ip = %self.ip, outcome = "throttled", "login refused");
                Err(CoreError::Throttled { retry_after })
            }
        }
    }

    /// Charges a failure to every budget.
    pub async fn failed(&self) -> Result<(), CoreError> {
        // Forget clean pairs before and after the write, so that no check that read the log
        // before the failure was committed can remember its pair as clean.
        let memo = &self.throttle.memo;
        memo.forget_all();
        let recorded = self
            .throttle
            .store
            .throttle
            .record_failure(&self.keys(), self.throttle.clock.now())
            .await;
        memo.forget_all();
        recorded?;
        Ok(())
    }

    /// A success forgets the (account, IP) failures, so a user who finally typed the
    /// right password starts afresh; the wider budgets keep counting.
    pub async fn succeeded(&self) {
        if !self.had_failures.load(Ordering::Relaxed) {
            return;
        }
        let key = ThrottleKey::account_ip(&self.account, &self.ip);
        if let Err(error) = self.throttle.store.throttle.clear_failures(&key).await {
            tracing::warn!(%error, "could not reset login failures");
        }
    }
}

/// How long a clean check is remembered.
pub const CLEAN_MEMO_TTL: Duration = Duration::from_secs(1);

/// The most (account, IP) pairs remembered at once.
const CLEAN_MEMO_ENTRIES: usize = 16_384;

/// Remembers, for at most [`CLEAN_MEMO_TTL`], that an (account, IP) pair had no failure
/// under any of its budgets in the database.
///
/// Correctness rules:
/// - any failure this instance records forgets everything remembered (a generation
///   counter), so failures made through this instance are never overlooked, not even one
///   recorded while a check was reading the log;
/// - failures recorded by another instance are seen here within [`CLEAN_MEMO_TTL`]: that
///   is the bound on how late a budget spent elsewhere starts refusing a client that has
///   been succeeding here;
/// - only clean pairs are remembered, and at most [`CLEAN_MEMO_ENTRIES`] of them.
pub struct CleanMemo {
    /// Each clean pair, with the generation its check started in.
    entries: TtlCache<ThrottleKey, u64>,
    generation: AtomicU64,
}

impl Default for CleanMemo {
    fn default() -> Self {
        Self {
            entries: TtlCache::new(CLEAN_MEMO_TTL, CLEAN_MEMO_ENTRIES),
            generation: AtomicU64::new(0),
        }
    }
}

impl CleanMemo {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn is_clean(&self, pair: &ThrottleKey, now: OffsetDateTime) -> bool {
        self.entries
            .get(pair, now)
            .is_some_and(|generation| generation == self.generation())
    }

    /// Remembers a pair found clean by a check that started at `generation`.
    fn remember(&self, pair: ThrottleKey, generation: u64, now: OffsetDateTime) {
        // A failure recorded after this insert still wins: `is_clean` compares the
        // entry's generation with the current one.
        if generation == self.generation() {
            self.entries.insert(pair, generation, now);
        }
    }

    /// Forgets every remembered pair.
    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_forgets_every_clean_pair() {
        let memo = CleanMemo::default();
        let ada = ThrottleKey::account_ip("cli_a", "10.0.0.1");
        let bob = ThrottleKey::account_ip("cli_b", "10.0.0.2");
        let now = sesame_domain::now();
        memo.remember(ada.clone(), memo.generation(), now);
        memo.remember(bob.clone(), memo.generation(), now);
        assert!(memo.is_clean(&ada, now) && memo.is_clean(&bob, now));
        memo.forget_all();
        assert!(!memo.is_clean(&ada, now) && !memo.is_clean(&bob, now));
    }

    #[test]
    fn a_check_overtaken_by_a_failure_remembers_nothing() {
        let memo = CleanMemo::default();
        let ada = ThrottleKey::account_ip("cli_a", "10.0.0.1");
        let started = memo.generation();
        memo.forget_all();
        let now = sesame_domain::now();
        memo.remember(ada.clone(), started, now);
        assert!(!memo.is_clean(&ada, now));
    }

    #[test]
    fn a_clean_check_is_remembered_for_one_second_only() {
        let memo = CleanMemo::default();
        let ada = ThrottleKey::account_ip("cli_a", "10.0.0.1");
        let now = sesame_domain::now();
        memo.remember(ada.clone(), memo.generation(), now);
        assert!(memo.is_clean(&ada, now + time::Duration::milliseconds(999)));
        assert!(!memo.is_clean(&ada, now + time::Duration::seconds(1)));
    }
}

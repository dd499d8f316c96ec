//! Login throttling against the shared database: every instance reads and writes the
//! same failure log, so the budgets hold across a fleet.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sesame_domain::throttle::combine;
use sesame_domain::{ThrottleKey, ThrottleVerdict};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;

/// The throttle charges for one attempt on `account` from `ip`.
pub struct Attempt<'a> {
    state: &'a AppState,
    account: String,
    ip: String,
    /// Whether `check` saw failures under the (account, IP) key, so that a success only
    /// writes when there is something to forget.
    had_failures: AtomicBool,
    /// Whether `check` may trust the [`CleanMemo`].
    remembered: bool,
}

impl<'a> Attempt<'a> {
    pub fn new(state: &'a AppState, account: &str, ip: &str) -> Self {
        Self {
            state,
            account: account.to_owned(),
            ip: ip.to_owned(),
            had_failures: AtomicBool::new(true),
            remembered: false,
        }
    }

    /// The same, for a caller whose every success is cheap and frequent (an API-key
    /// exchange): a clean check is remembered for [`CLEAN_MEMO_TTL`], so a busy client
    /// does not read the failure log on every request. See [`CleanMemo`] for the bound.
    pub fn remembered(state: &'a AppState, account: &str, ip: &str) -> Self {
        Self {
            remembered: true,
            ..Self::new(state, account, ip)
        }
    }

    fn keys(&self) -> Vec<ThrottleKey> {
        self.state
            .config
            .throttle
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
    pub async fn check(&self) -> Result<(), ApiError> {
        let pair = ThrottleKey::account_ip(&self.account, &self.ip);
        let memo = &self.state.clean_memo;
        if self.remembered && memo.is_clean(&pair) {
            self.had_failures.store(false, Ordering::Relaxed);
            return Ok(());
        }
        let generation = memo.generation();
        let policy = self.state.config.throttle;
        let now = sesame_domain::now();
        let charges = policy.charges(&self.account, &self.ip);
        let keys: Vec<ThrottleKey> = charges.iter().map(|(key, _)| key.clone()).collect();
        let failures = self
            .state
            .store
            .throttle
            .recent_failures(&keys, now - policy.longest_window())
            .await?;
        self.had_failures
            .store(failures.iter().any(|(k, _)| k == pair.as_str()), Ordering::Relaxed);
        if self.remembered && failures.is_empty() {
            memo.remember(pair, generation);
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
                Err(ApiError::Throttled { retry_after })
            }
        }
    }

    /// Charges a failure to every budget.
    pub async fn failed(&self) -> Result<(), ApiError> {
        // Forget clean pairs before and after the write, so that no check that read the log
        // before the failure was committed can remember its pair as clean.
        self.state.clean_memo.forget_all();
        let recorded = self
            .state
            .store
            .throttle
            .record_failure(&self.keys(), sesame_domain::now())
            .await;
        self.state.clean_memo.forget_all();
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
        if let Err(error) = self.state.store.throttle.clear_failures(&key).await {
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
#[derive(Default)]
pub struct CleanMemo {
    entries: RwLock<HashMap<ThrottleKey, (Instant, u64)>>,
    generation: AtomicU64,
}

impl CleanMemo {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn is_clean(&self, pair: &ThrottleKey) -> bool {
        let current = self.generation();
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(pair)
            .is_some_and(|(at, generation)| *generation == current && at.elapsed() < CLEAN_MEMO_TTL)
    }

    /// Remembers a pair found clean by a check that started at `generation`.
    fn remember(&self, pair: ThrottleKey, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if generation != self.generation() {
            return;
        }
        if entries.len() >= CLEAN_MEMO_ENTRIES {
            let current = self.generation();
            entries.retain(|_, (at, g)| *g == current && at.elapsed() < CLEAN_MEMO_TTL);
            if entries.len() >= CLEAN_MEMO_ENTRIES {
                return;
            }
        }
        entries.insert(pair, (Instant::now(), generation));
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
        memo.remember(ada.clone(), memo.generation());
        memo.remember(bob.clone(), memo.generation());
        assert!(memo.is_clean(&ada) && memo.is_clean(&bob));
        memo.forget_all();
        assert!(!memo.is_clean(&ada) && !memo.is_clean(&bob));
    }

    #[test]
    fn a_check_overtaken_by_a_failure_remembers_nothing() {
        let memo = CleanMemo::default();
        let ada = ThrottleKey::account_ip("cli_a", "10.0.0.1");
        let started = memo.generation();
        memo.forget_all();
        memo.remember(ada.clone(), started);
        assert!(!memo.is_clean(&ada));
    }
}

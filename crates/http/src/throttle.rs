//! Login throttling against the shared database: every instance reads and writes the
//! same failure log, so the budgets hold across a fleet.

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
    had_failures: std::sync::atomic::AtomicBool,
}

impl<'a> Attempt<'a> {
    pub fn new(state: &'a AppState, account: &str, ip: &str) -> Self {
        Self {
            state,
            account: account.to_owned(),
            ip: ip.to_owned(),
            had_failures: std::sync::atomic::AtomicBool::new(true),
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
        let pair = ThrottleKey::account_ip(&self.account, &self.ip);
        self.had_failures.store(
            failures.iter().any(|(k, _)| k == pair.as_str()),
            std::sync::atomic::Ordering::Relaxed,
        );
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
        self.state
            .store
            .throttle
            .record_failure(&self.keys(), sesame_domain::now())
            .await?;
        Ok(())
    }

    /// A success forgets the (account, IP) failures, so a user who finally typed the
    /// right password starts afresh; the wider budgets keep counting.
    pub async fn succeeded(&self) {
        if !self.had_failures.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let key = ThrottleKey::account_ip(&self.account, &self.ip);
        if let Err(error) = self.state.store.throttle.clear_failures(&key).await {
            tracing::warn!(%error, "could not reset login failures");
        }
    }
}

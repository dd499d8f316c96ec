//! Login throttling: budgets of failed attempts per window, and the arithmetic that turns
//! recorded failures into a verdict. Failures are recorded by storage (shared by every
//! instance); this module only decides.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use time::OffsetDateTime;

use crate::duration::{DurationError, parse_duration};

/// `limit` failures allowed in any sliding `window`, e.g. `5/15m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("expected COUNT/DURATION, e.g. 5/15m")]
    Malformed,
    #[error("the count must be a whole number from 1 to 1000000")]
    Count,
    #[error("the window: {0}")]
    Window(#[from] DurationError),
}

impl FromStr for Budget {
    type Err = BudgetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, window) = text.split_once('/').ok_or(BudgetError::Malformed)?;
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BudgetError::Count);
        }
        let limit: u32 = count.parse().map_err(|_| BudgetError::Count)?;
        if !(1..=1_000_000).contains(&limit) {
            return Err(BudgetError::Count);
        }
        Ok(Self {
            limit,
            window: parse_duration(window)?,
        })
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.limit, self.window.as_secs())
    }
}

/// The three budgets every login attempt is charged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Per (account, client IP): stops guessing one account from one place.
    pub account_ip: Budget,
    /// Per account from anywhere: stops a distributed attack on one account.
    pub account: Budget,
    /// Per client IP over all accounts: stops spraying one password over many accounts.
    pub ip: Budget,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_ip: Budget {
                limit: 5,
                window: Duration::from_secs(15 * 60),
            },
            account: Budget {
                limit: 50,
                window: Duration::from_secs(3_600),
            },
            ip: Budget {
                limit: 100,
                window: Duration::from_secs(15 * 60),
            },
        }
    }
}

/// The key failures are counted under. Account names (emails, client ids) and IPs are
/// kept apart by prefix, so no account name can be mistaken for an IP or a pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey(String);

impl ThrottleKey {
    pub fn account_ip(account: &str, ip: &str) -> Self {
        Self(format!("acct_ip:{ip}|{account}"))
    }

    pub fn account(account: &str) -> Self {
        Self(format!("acct:{account}"))
    }

    pub fn ip(ip: &str) -> Self {
        Self(format!("ip:{ip}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    Allowed,
    /// Too many recent failures; try again after this long (whole seconds, at least 1).
    Throttled {
        retry_after: Duration,
    },
}

impl ThrottlePolicy {
    /// The keys and budgets an attempt on `account` from `ip` is charged against.
    pub fn charges(&self, account: &str, ip: &str) -> [(ThrottleKey, Budget); 3] {
        [
            (ThrottleKey::account_ip(account, ip), self.account_ip),
            (ThrottleKey::account(account), self.account),
            (ThrottleKey::ip(ip), self.ip),
        ]
    }

    /// The longest window, i.e. how far back failures matter at all.
    pub fn longest_window(&self) -> Duration {
        self.account_ip.window.max(self.account.window).max(self.ip.window)
    }
}

impl Budget {
    /// Judges an attempt given the times of earlier failures under this budget's key.
    /// Failures older than the window do not count; once `limit` failures lie inside
    /// it, the attempt waits until the oldest of the surplus leaves the window.
    pub fn judge(&self, failures: &[OffsetDateTime], now: OffsetDateTime) -> ThrottleVerdict {
        let start = now - self.window;
        let mut recent: Vec<OffsetDateTime> = failures.iter().copied().filter(|at| *at > start).collect();
        let limit = self.limit as usize;
        if recent.len() < limit {
            return ThrottleVerdict::Allowed;
        }
        recent.sort_unstable();
        // After this failure leaves the window, fewer than `limit` remain.
        let frees_at = recent[recent.len() - limit] + self.window;
        let wait = (frees_at - now).max(time::Duration::ZERO);
        let whole_seconds = u64::try_from(wait.whole_seconds()).unwrap_or(0) + u64::from(wait.subsec_nanoseconds() > 0);
        ThrottleVerdict::Throttled {
            retry_after: Duration::from_secs(whole_seconds.max(1)),
        }
    }
}

/// Combines verdicts: throttled if any budget is spent, for as long as the longest wait.
pub fn combine(verdicts: impl IntoIterator<Item = ThrottleVerdict>) -> ThrottleVerdict {
    verdicts
        .into_iter()
        .fold(ThrottleVerdict::Allowed, |acc, next| match (acc, next) {
            (ThrottleVerdict::Allowed, other) | (other, ThrottleVerdict::Allowed) => other,
            (ThrottleVerdict::Throttled { retry_after: a }, ThrottleVerdict::Throttled { retry_after: b }) => {
                ThrottleVerdict::Throttled { retry_after: a.max(b) }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_budgets() {
        let budget: Budget = "5/15m".parse().expect("valid");
        assert_eq!(budget.limit, 5);
        assert_eq!(budget.window, Duration::from_secs(900));
        for bad in ["5", "/15m", "0/15m", "-1/15m", "5/0s", "5/15", "five/15m", "5/15m/1"] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allows_until_the_limit_then_waits_for_the_oldest_to_expire() {
        let budget: Budget = "3/10m".parse().expect("valid");
        let now = datetime!(2026-01-01 00:10 UTC);
        let failures = [datetime!(2026-01-01 00:01 UTC), datetime!(2026-01-01 00:02 UTC)];
        assert_eq!(budget.judge(&failures, now), ThrottleVerdict::Allowed);
        let failures = [
            datetime!(2026-01-01 00:03 UTC),
            datetime!(2026-01-01 00:01 UTC),
            datetime!(2026-01-01 00:02 UTC),
        ];
        assert_eq!(
            budget.judge(&failures, now),
            ThrottleVerdict::Throttled {
                retry_after: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let budget: Budget = "2/10m".parse().expect("valid");
        let now = datetime!(2026-01-01 01:00 UTC);
        let failures = [datetime!(2026-01-01 00:10 UTC), datetime!(2026-01-01 00:50 UTC)];
        assert_eq!(budget.judge(&failures, now), ThrottleVerdict::Allowed);
    }

    #[test]
    fn combined_verdicts_take_the_longest_wait() {
        let verdict = combine([
            ThrottleVerdict::Allowed,
            ThrottleVerdict::Throttled {
                retry_after: Duration::from_secs(5),
            },
            ThrottleVerdict::Throttled {
                retry_after: Duration::from_secs(9),
            },
        ]);
        assert_eq!(
            verdict,
            ThrottleVerdict::Throttled {
                retry_after: Duration::from_secs(9)
            }
        );
        assert_eq!(combine([ThrottleVerdict::Allowed]), ThrottleVerdict::Allowed);
    }
}

//! Login throttling: budgets of failed attempts per window, and the arithmetic that turns
//! recorded failures into a verdict. Failures are recorded by storage (shared by every
//! instance); this module only decides.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
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
    /// Registrations per client IP, every attempt counted.
    pub registration: Budget,
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
            registration: Budget {
                limit: 20,
                window: Duration::from_secs(3_600),
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
        Self(format!("acct_ip:{}|{account}", ip_bucket(ip)))
    }

    pub fn account(account: &str) -> Self {
        Self(format!("acct:{account}"))
    }

    pub fn ip(ip: &str) -> Self {
        Self(format!("ip:{}", ip_bucket(ip)))
    }

    pub fn registration(ip: &str) -> Self {
        Self(format!("reg:{}", ip_bucket(ip)))
    }

    pub fn revocation(client: &str) -> Self {
        Self(format!("revoke:{client}"))
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

/// The unit a client address is counted in: an IPv4 address on its own, an IPv6 address
/// by its /64 (one host commonly holds a whole /64, so counting per /128 would give it
/// unlimited budgets). IPv4-mapped IPv6 addresses count as their IPv4 address; anything
/// that is not an address is counted as it is.
pub fn ip_bucket(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(v6)) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(network))
        }
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// What is being attempted, which decides the budgets it is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// A password (login or password change) for an email: per (email, IP), per email,
    /// per IP.
    Password,
    /// A client authenticating with an API key: per (client, IP) and per IP only. A
    /// `client_id` is public, so failures that merely name a client must not lock it out
    /// from its own addresses; its key's 256 bits need no account-wide budget.
    Client,
    /// A registration: per IP, every attempt counted.
    Registration,
    /// A client revoking one of its own tokens: each revocation is kept until the token
    /// expires, so each counts against a per-client budget (the size of the per-IP one).
    Revocation,
}

impl ThrottlePolicy {
    /// The keys and budgets an attempt of `kind` on `account` from `ip` is charged against.
    pub fn charges(&self, kind: AttemptKind, account: &str, ip: &str) -> Vec<(ThrottleKey, Budget)> {
        match kind {
            AttemptKind::Password => vec![
                (ThrottleKey::account_ip(account, ip), self.account_ip),
                (ThrottleKey::account(account), self.account),
                (ThrottleKey::ip(ip), self.ip),
            ],
            AttemptKind::Client => vec![
                (ThrottleKey::account_ip(account, ip), self.account_ip),
                (ThrottleKey::ip(ip), self.ip),
            ],
            AttemptKind::Registration => vec![(ThrottleKey::registration(ip), self.registration)],
            AttemptKind::Revocation => vec![(ThrottleKey::revocation(account), self.ip)],
        }
    }

    /// The longest window, i.e. how far back failures matter at all.
    pub fn longest_window(&self) -> Duration {
        self.account_ip
            .window
            .max(self.account.window)
            .max(self.ip.window)
            .max(self.registration.window)
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

    /// The verdict of `budget` at minute `now` on failures at the given minutes (all past
    /// 2026-01-01 00:00 UTC).
    fn verdict(budget: &str, now: i64, failures: &[i64]) -> ThrottleVerdict {
        let minute = |m: i64| datetime!(2026-01-01 00:00 UTC) + time::Duration::minutes(m);
        let failures: Vec<OffsetDateTime> = failures.iter().map(|m| minute(*m)).collect();
        budget.parse::<Budget>().expect("valid").judge(&failures, minute(now))
    }

    #[test]
    fn allows_until_the_limit_then_waits_for_the_oldest_to_expire() {
        assert_eq!(verdict("3/10m", 10, &[1, 2]), ThrottleVerdict::Allowed);
        assert_eq!(
            verdict("3/10m", 10, &[3, 1, 2]),
            ThrottleVerdict::Throttled {
                retry_after: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        assert_eq!(verdict("2/10m", 60, &[10, 50]), ThrottleVerdict::Allowed);
    }

    #[test]
    fn ipv6_addresses_are_counted_per_64_and_ipv4_per_address() {
        assert_eq!(ip_bucket("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_eq!(ip_bucket("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(ip_bucket("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_bucket("192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_bucket("unknown"), "unknown");
        assert_eq!(ThrottleKey::ip("2001:db8::1"), ThrottleKey::ip("2001:db8::2"));
    }

    #[test]
    fn a_client_is_never_charged_account_wide() {
        let policy = ThrottlePolicy::default();
        let keys: Vec<ThrottleKey> = policy
            .charges(AttemptKind::Client, "cli_x", "192.0.2.1")
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert!(!keys.contains(&ThrottleKey::account("cli_x")));
        assert_eq!(keys.len(), 2);
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

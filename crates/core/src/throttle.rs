//! Login throttling against the shared database: every instance reads and writes the
//! same failure log, so the budgets hold across a fleet.
//!
//! An attempt that is about to be verified at a cost (a password hashed) first
//! *reserves* its place in every budget: storage counts and charges in one locked step,
//! so with a budget of N at most N failing attempts are ever verified in a window,
//! however many arrive at once and on however many instances. The charge stands as a
//! failure unless the attempt succeeds, so a client that hangs up mid-hash has paid.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sesame_domain::throttle::combine;
use sesame_domain::{AttemptKind, Budget, ThrottleKey, ThrottlePolicy, ThrottleVerdict};
use sesame_storage::{Charge, Store};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cache::GuardedCache;
use crate::clock::SharedClock;
use crate::error::CoreError;

/// The throttle: budgets, the shared failure log, and the memo of clean checks.
pub struct Throttle {
    policy: ThrottlePolicy,
    store: Store,
    clock: SharedClock,
    memo: CleanMemo,
    /// Keys the hash that names an account in the log (shared by every instance).
    account_key: hmac::Hmac<sha2::Sha256>,
}

/// The name of the installation secret that keys account names in the failure log.
pub const ACCOUNT_KEY_SECRET: &str = "throttle_account_key";

impl Throttle {
    /// `account_key` is the installation's secret for naming accounts (see
    /// [`ACCOUNT_KEY_SECRET`]).
    pub fn new(policy: ThrottlePolicy, store: Store, clock: SharedClock, account_key: &[u8]) -> Self {
        use hmac::Mac as _;
        Self {
            policy,
            store,
            clock,
            memo: CleanMemo::default(),
            // HMAC takes a key of any length.
            account_key: hmac::Hmac::<sha2::Sha256>::new_from_slice(account_key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
        }
    }

    /// How an account is named in the failure log: a keyed hash (HMAC-SHA256, 128 bits,
    /// base64url), never the name as typed, so that a password typed into the email field
    /// is not stored, and the log (or a backup) does not list who was attacked.
    fn account_tag(&self, account: &str) -> String {
        use base64::Engine as _;
        use hmac::Mac as _;
        let mut mac = self.account_key.clone();
        mac.update(account.as_bytes());
        let digest = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }

    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    fn attempt(&self, kind: AttemptKind, account: &str, ip: &str) -> Attempt<'_> {
        Attempt {
            throttle: self,
            kind,
            account: self.account_tag(account),
            ip: ip.to_owned(),
            id: Uuid::now_v7(),
            had_failures: AtomicBool::new(true),
            reserved: AtomicBool::new(false),
            remembered: false,
        }
    }

    /// A password attempt for `email` from `ip` (a login or a password change).
    pub fn password(&self, email: &str, ip: &str) -> Attempt<'_> {
        self.attempt(AttemptKind::Password, email, ip)
    }

    /// A registration from `ip`: every attempt counts.
    pub fn registration(&self, ip: &str) -> Attempt<'_> {
        self.attempt(AttemptKind::Registration, "", ip)
    }

    /// A client revoking one of its own tokens (each revocation is a row kept until the
    /// token expires, so a client cannot grow the log without bound).
    pub fn revocation(&self, client: &str) -> Attempt<'_> {
        self.attempt(AttemptKind::Revocation, client, "")
    }

    /// A client authenticating from `ip`. Its every success is cheap and frequent (an
    /// API-key exchange): a clean [`Attempt::check`] is remembered for
    /// [`CLEAN_MEMO_TTL`], so a busy client does not read the failure log on every
    /// request. See [`CleanMemo`] for the bound. Failures are charged exactly.
    pub fn client(&self, account: &str, ip: &str) -> Attempt<'_> {
        Attempt {
            remembered: true,
            ..self.attempt(AttemptKind::Client, account, ip)
        }
    }

    /// Deletes failures older than every window.
    pub async fn prune(&self) -> Result<(), CoreError> {
        let cutoff = self.clock.now() - self.policy.longest_window();
        self.store.throttle.prune_failures(cutoff).await?;
        Ok(())
    }
}

/// One attempt's dealings with the budgets it is charged to.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    kind: AttemptKind,
    account: String,
    ip: String,
    /// Names this attempt's reservation in the failure log.
    id: Uuid,
    /// Whether the (account, IP) key had failures, so that a success only writes when
    /// there is something to forget.
    had_failures: AtomicBool,
    /// Whether this attempt holds a reservation.
    reserved: AtomicBool,
    /// Whether `check` may trust the [`CleanMemo`].
    remembered: bool,
}

impl Attempt<'_> {
    fn charges(&self) -> Vec<(ThrottleKey, Budget)> {
        self.throttle.policy.charges(self.kind, &self.account, &self.ip)
    }

    fn pair(&self) -> ThrottleKey {
        ThrottleKey::account_ip(&self.account, &self.ip)
    }

    /// How long to wait, from the failures now in the log.
    async fn verdict(&self, now: OffsetDateTime) -> Result<ThrottleVerdict, CoreError> {
        let charges = self.charges();
        let keys: Vec<ThrottleKey> = charges.iter().map(|(key, _)| key.clone()).collect();
        let failures = self
            .throttle
            .store
            .throttle
            .recent_failures(&keys, now - self.throttle.policy.longest_window())
            .await?;
        self.had_failures.store(
            failures.iter().any(|(k, _)| k == self.pair().as_str()),
            Ordering::Relaxed,
        );
        Ok(combine(charges.iter().map(|(key, budget)| {
            let times: Vec<OffsetDateTime> = failures
                .iter()
                .filter(|(k, _)| k == key.as_str())
                .map(|(_, at)| *at)
                .collect();
            budget.judge(&times, now)
        })))
    }

    fn refused(&self, retry_after: Duration) -> CoreError {
        tracing::info!(ip = %self.ip, outcome = "throttled", "attempt refused");
        CoreError::Throttled { retry_after }
    }

    /// Refuses the attempt with 429 if any budget is spent, whatever the credentials.
    /// Charges nothing: for attempts whose verification costs nothing, followed by
    /// [`reserve`](Self::reserve) only when they fail.
    pub async fn check(&self) -> Result<(), CoreError> {
        let memo = &self.throttle.memo;
        let now = self.throttle.clock.now();
        let pair = self.pair();
        if self.remembered && memo.is_clean(&pair, now) {
            self.had_failures.store(false, Ordering::Relaxed);
            return Ok(());
        }
        let generation = memo.generation();
        let verdict = self.verdict(now).await?;
        let clean = !self.had_failures.load(Ordering::Relaxed) && verdict == ThrottleVerdict::Allowed;
        if self.remembered && clean {
            memo.remember(pair, generation, now);
        }
        match verdict {
            ThrottleVerdict::Allowed => Ok(()),
            ThrottleVerdict::Throttled { retry_after } => Err(self.refused(retry_after)),
        }
    }

    /// Reserves this attempt's place in every budget, or refuses it with 429 if any is
    /// spent. From here on the attempt counts as a failure until it
    /// [`succeeded`](Self::succeeded), even if the request is dropped meanwhile.
    pub async fn reserve(&self) -> Result<(), CoreError> {
        let now = self.throttle.clock.now();
        let charges: Vec<Charge> = self
            .charges()
            .into_iter()
            .map(|(key, budget)| Charge {
                key,
                limit: budget.limit,
                since: now - budget.window,
            })
            .collect();
        // A charge is a failure until it is taken back: no check that read the log before
        // it may remember its pair as clean. (A password attempt's charge is forgotten
        // when it fails: most succeed, and each would otherwise empty the memo.)
        let memo = &self.throttle.memo;
        let forget = self.kind != AttemptKind::Password;
        if forget {
            memo.forget_all();
        }
        let reservation = self.throttle.store.throttle.reserve(&charges, self.id, now).await;
        if forget {
            memo.forget_all();
        }
        let reservation = reservation?;
        if reservation.charged {
            self.reserved.store(true, Ordering::Relaxed);
            let pair = self.pair();
            let pair_failures = charges
                .iter()
                .zip(&reservation.counts)
                .any(|(charge, n)| charge.key == pair && *n > 0);
            self.had_failures.store(pair_failures, Ordering::Relaxed);
            return Ok(());
        }
        let retry_after = match self.verdict(now).await? {
            ThrottleVerdict::Throttled { retry_after } => retry_after,
            // The failures that refused it expired in between: try again at once.
            ThrottleVerdict::Allowed => Duration::from_secs(1),
        };
        Err(self.refused(retry_after))
    }

    /// The attempt failed: its reservation stays, as a failure.
    pub async fn failed(&self) {
        let memo = &self.throttle.memo;
        memo.forget_all();
        if !self.reserved.load(Ordering::Relaxed) {
            return;
        }
        let settled = self.throttle.store.throttle.settle(self.id).await;
        memo.forget_all();
        if let Err(error) = settled {
            // Unsettled, it still counts; only a success's reset will not clear it.
            tracing::warn!(%error, "could not settle a failed attempt");
        }
    }

    /// The attempt succeeded: its reservation is taken back, and the (account, IP)
    /// failures are forgotten, so a user who finally typed the right password starts
    /// afresh; the wider budgets keep counting.
    pub async fn succeeded(&self) {
        let store = &self.throttle.store.throttle;
        if self.reserved.load(Ordering::Relaxed)
            && let Err(error) = store.release(self.id).await
        {
            tracing::warn!(%error, "could not release a throttle reservation");
        }
        if matches!(self.kind, AttemptKind::Registration | AttemptKind::Revocation)
            || !self.had_failures.load(Ordering::Relaxed)
        {
            return;
        }
        if let Err(error) = store.clear_failures(&self.pair()).await {
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
///
/// Each clean pair is kept with the generation its check started in.
pub struct CleanMemo(GuardedCache<ThrottleKey, u64>);

impl Default for CleanMemo {
    fn default() -> Self {
        Self(GuardedCache::new(CLEAN_MEMO_TTL, CLEAN_MEMO_ENTRIES))
    }
}

impl CleanMemo {
    fn generation(&self) -> u64 {
        self.0.generation()
    }

    fn is_clean(&self, pair: &ThrottleKey, now: OffsetDateTime) -> bool {
        self.0
            .get(pair, now)
            .is_some_and(|generation| generation == self.generation())
    }

    /// Remembers a pair found clean by a check that started at `generation`.
    fn remember(&self, pair: ThrottleKey, generation: u64, now: OffsetDateTime) {
        // A failure recorded after this insert still wins: `is_clean` compares the
        // entry's generation with the current one.
        // (So no second check after it, and no copy of the key for one.)
        if generation == self.generation() {
            self.0.insert(pair, generation, now);
        }
    }

    /// Forgets every remembered pair.
    fn forget_all(&self) {
        self.0.invalidate();
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

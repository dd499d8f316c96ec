//! Service-level tests of the session lifecycle on a real SQLite store, with a fake clock
//! and a gate in the store to hold a request exactly where a race would put it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use sesame_core::accounts::Registrar;
use sesame_core::sealing::Sealer;
use sesame_core::sessions::Origin;
use sesame_core::{Core, CoreError, HashingPool, ManualClock, Settings, SigningAlg, TokenSettings};
use sesame_domain::password::{HashParams, PasswordHasher};
use sesame_domain::{PasswordPolicy, SessionHandleHash, SessionId, SessionPolicy, ThrottlePolicy, UserId};
use sesame_storage::{NewSession, SessionCutoffs, SessionRecord, SessionStore, Store, UserRecord};
use time::OffsetDateTime;
use tokio::sync::Notify;

const PASSWORD: &str = "correct horse battery staple";

/// A session store that, once armed, holds the next session read after it has read the
/// row and before it answers, until released: the moment a request is "in flight" with
/// what it read.
struct Gated {
    inner: Arc<dyn SessionStore>,
    armed: std::sync::atomic::AtomicBool,
    reached: Notify,
    release: Notify,
}

#[async_trait]
impl SessionStore for Gated {
    async fn create_session(&self, session: &NewSession) -> sesame_storage::Result<bool> {
        self.inner.create_session(session).await
    }

    async fn find_session(
        &self,
        handle_hash: &SessionHandleHash,
    ) -> sesame_storage::Result<Option<(SessionRecord, UserRecord)>> {
        let found = self.inner.find_session(handle_hash).await;
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
        found
    }

    async fn touch_session(&self, id: SessionId, at: OffsetDateTime) -> sesame_storage::Result<()> {
        self.inner.touch_session(id, at).await
    }

    async fn delete_session_by_hash(&self, handle_hash: &SessionHandleHash) -> sesame_storage::Result<bool> {
        self.inner.delete_session_by_hash(handle_hash).await
    }

    async fn delete_user_session(&self, user_id: UserId, id: SessionId) -> sesame_storage::Result<bool> {
        self.inner.delete_user_session(user_id, id).await
    }

    async fn delete_user_sessions(&self, user_id: UserId, keep: Option<SessionId>) -> sesame_storage::Result<u64> {
        self.inner.delete_user_sessions(user_id, keep).await
    }

    async fn list_user_sessions(
        &self,
        user_id: UserId,
        cutoffs: SessionCutoffs,
    ) -> sesame_storage::Result<Vec<SessionRecord>> {
        self.inner.list_user_sessions(user_id, cutoffs).await
    }

    async fn delete_expired_sessions(&self, cutoffs: SessionCutoffs) -> sesame_storage::Result<u64> {
        self.inner.delete_expired_sessions(cutoffs).await
    }
}

fn settings() -> Settings {
    Settings {
        sessions: SessionPolicy {
            idle: std::time::Duration::from_secs(1_800),
            absolute: std::time::Duration::from_secs(43_200),
        },
        throttle: ThrottlePolicy::default(),
        passwords: PasswordPolicy { min_length: 8 },
        registration_open: true,
        tokens: TokenSettings {
            issuer: "https://auth.example.com".into(),
            audience: "https://auth.example.com".into(),
            ttl: std::time::Duration::from_secs(900),
            alg: SigningAlg::EdDsa,
            publish_delay: std::time::Duration::from_secs(330),
            sealer: Arc::new(Sealer::default()),
            resources: Vec::new(),
            revocation_poll: sesame_core::tokens::revocation::POLL_INTERVAL,
            notifications: true,
        },
        scopes: sesame_domain::Catalogue::Open,
        auth_code_ttl: std::time::Duration::from_secs(60),
        refresh: sesame_core::RefreshPolicy::default(),
        frontends: Vec::new(),
    }
}

async fn core_with_gate(dir: &tempfile::TempDir) -> (Core, Arc<Gated>, ManualClock) {
    let url = format!("sqlite://{}", dir.path().join("sesame.db").display());
    let mut store = Store::connect(&url, &sesame_storage::ConnectOptions::default())
        .await
        .unwrap();
    store.database.migrate().await.unwrap();
    let gated = Arc::new(Gated {
        inner: store.sessions.clone(),
        armed: false.into(),
        reached: Notify::new(),
        release: Notify::new(),
    });
    store.sessions = gated.clone();
    let clock = ManualClock::new();
    let hashing = HashingPool::new(PasswordHasher::new(HashParams::default()).unwrap(), 2);
    let core = Core::new(settings(), store, hashing, Arc::new(clock.clone()))
        .await
        .unwrap();
    (core, gated, clock)
}

/// A request that read a session just before it was ended (logout) must not put it back
/// in the cache: once the logout has answered, the old cookie is refused on this instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_read_before_a_logout_is_not_cached_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (core, gate, _clock) = core_with_gate(&dir).await;
    let origin = Origin {
        ip: "192.0.2.1".into(),
        user_agent: None,
    };
    core.accounts()
        .register("ada@example.com", PASSWORD.into(), Registrar::Operator)
        .await
        .unwrap();
    let started = core
        .sessions()
        .login("ada@example.com", PASSWORD.into(), &origin, None)
        .await
        .unwrap();
    let hash = started.handle.hash();

    // A request reads the session from the database, and is held there.
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let in_flight = {
        let core = core.clone();
        tokio::spawn(async move { core.sessions().authenticate(&hash).await })
    };
    gate.reached.notified().await;
    // Meanwhile the user logs out.
    core.sessions().logout(&started.session, "192.0.2.1").await.unwrap();
    gate.release.notify_one();
    // The in-flight request may finish with what it read...
    let _ = in_flight.await.unwrap();
    // ...but the logout has answered: the handle is refused from now on.
    assert!(matches!(
        core.sessions().authenticate(&hash).await,
        Err(CoreError::SessionEnded)
    ));
}

//! Passwords: the rules a new password must meet (NIST SP 800-63B §5.1.1) and argon2id
//! hashing. Hashing is CPU work with no I/O; running it off the async workers is the
//! caller's business.

use std::fmt;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The longest password accepted anywhere, in characters. Long enough for any passphrase,
/// short enough that hashing it costs nothing extra.
pub const MAX_PASSWORD_LENGTH: usize = 1024;

/// A password as typed, compared byte-exact: never trimmed, case-folded or truncated.
/// `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {0} characters")]
    TooShort(usize),
    #[error("must be at most {MAX_PASSWORD_LENGTH} characters")]
    TooLong,
    #[error("is too common: it appears on lists of breached passwords")]
    TooCommon,
}

impl Password {
    /// Accepts any candidate for a login attempt: only the cap applies, since the stored
    /// hash decides the rest.
    pub fn for_login(raw: String) -> Result<Self, PasswordError> {
        if raw.chars().count() > MAX_PASSWORD_LENGTH {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The rules for choosing a new password: a minimum length and the common-password list,
/// and nothing else (no composition rules, per NIST SP 800-63B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 8 }
    }
}

impl PasswordPolicy {
    /// Checks a new password. Length is counted in Unicode scalar values, so a passphrase
    /// in any script is measured as a person would count it.
    pub fn parse_new(&self, raw: String) -> Result<Password, PasswordError> {
        let length = raw.chars().count();
        if length < self.min_length {
            return Err(PasswordError::TooShort(self.min_length));
        }
        if length > MAX_PASSWORD_LENGTH {
            return Err(PasswordError::TooLong);
        }
        if is_common(&raw) {
            return Err(PasswordError::TooCommon);
        }
        Ok(Password(raw))
    }
}

/// Whether a password is on the bundled list of common and breached passwords.
pub fn is_common(candidate: &str) -> bool {
    passwords::analyzer::is_common_password(candidate)
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    /// OWASP's first recommendation for argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Hashes and verifies passwords with argon2id under fixed parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: HashParams,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish()
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password, or a stored hash that cannot be read.
    Mismatch,
    /// Right password, hash already under the current parameters.
    Match,
    /// Right password; here is the same password hashed under the current parameters.
    MatchRehashed(String),
}

impl PasswordHasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        let argon_params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params),
            params,
        })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes a password into a PHC string with a fresh random salt.
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        let failed = |e: &dyn fmt::Display| HashError::Hashing(e.to_string());
        let mut salt_bytes = [0u8; 16];
        crate::random::fill(&mut salt_bytes);
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| failed(&e))?;
        let params = self.argon2.params().clone();
        let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
        with_memory(params.block_count(), |blocks| {
            self.argon2
                .hash_password_into_with_memory(password.expose().as_bytes(), &salt_bytes, &mut out, blocks)
        })
        .map_err(|e| failed(&e))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
        };
        Ok(hash.to_string())
    }

    /// Verifies a password against a stored PHC string, upgrading the hash when it was
    /// made under other parameters. The cost of a mismatch equals the cost of a match
    /// made under the same parameters, which is what the dummy verification relies on.
    pub fn verify(&self, password: &Password, stored: &str) -> Verification {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Verification::Mismatch;
        };
        // Verify with the parameters recorded in the hash itself, so older hashes keep
        // working after the defaults change.
        if !matches_stored(password, &parsed) {
            return Verification::Mismatch;
        }
        if self.is_current(&parsed) {
            return Verification::Match;
        }
        match self.hash(password) {
            Ok(rehashed) => Verification::MatchRehashed(rehashed),
            Err(_) => Verification::Match,
        }
    }

    fn is_current(&self, parsed: &PasswordHash<'_>) -> bool {
        let Ok(params) = Params::try_from(parsed) else {
            return false;
        };
        parsed.algorithm == Algorithm::Argon2id.ident()
            && parsed.version == Some(Version::V0x13.into())
            && params.m_cost() == self.params.memory_kib
            && params.t_cost() == self.params.iterations
            && params.p_cost() == self.params.parallelism
    }
}

/// Whether `password` hashes, under the stored hash's own algorithm, version, parameters
/// and salt, to the stored output (compared in constant time).
fn matches_stored(password: &Password, parsed: &PasswordHash<'_>) -> bool {
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .map_or(Ok(Version::V0x13), Version::try_from)
        .unwrap_or(Version::V0x13);
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let hashed = with_memory(params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password.expose().as_bytes(), salt, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == expected)
}

thread_local! {
    /// argon2's working memory (19 MiB under the defaults), kept by each thread that
    /// hashes and reused by every hash it makes: the process holds one per hashing thread,
    /// never one per hash, whatever the allocator would keep of freed ones.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `work` with this thread's argon2 memory, grown to at least `blocks` blocks.
fn with_memory<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        work(&mut memory[..blocks])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("valid params")
    }

    fn policy() -> PasswordPolicy {
        PasswordPolicy { min_length: 8 }
    }

    #[test]
    fn new_passwords_need_the_minimum_length_counted_in_characters() {
        assert_eq!(
            policy().parse_new("short".into()).err(),
            Some(PasswordError::TooShort(8))
        );
        // Eight characters, more than eight bytes.
        assert!(policy().parse_new("ßßßßßßßx".into()).is_ok());
    }

    #[test]
    fn common_passwords_are_refused() {
        for common in ["password", "12345678", "qwertyuiop", "iloveyou"] {
            assert_eq!(
                policy().parse_new(common.into()).err(),
                Some(PasswordError::TooCommon),
                "{common}"
            );
        }
    }

    #[test]
    fn long_passphrases_with_spaces_are_kept_exactly() {
        let phrase = "  correct horse battery staple  ".to_string();
        let password = policy().parse_new(phrase.clone()).expect("valid");
        assert_eq!(password.expose(), phrase);
        assert_eq!(
            policy().parse_new("x".repeat(MAX_PASSWORD_LENGTH + 1)).err(),
            Some(PasswordError::TooLong)
        );
        assert!(policy().parse_new("y".repeat(MAX_PASSWORD_LENGTH)).is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = Password::for_login("hunter2-secret".into()).expect("under cap");
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn verify_matches_only_the_exact_password() {
        let hasher = cheap();
        let password = Password::for_login("Correct Horse".into()).expect("ok");
        let stored = hasher.hash(&password).expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(hasher.verify(&password, &stored), Verification::Match);
        for near in ["correct horse", "Correct Horse ", "Correct Hors"] {
            let candidate = Password::for_login(near.into()).expect("ok");
            assert_eq!(hasher.verify(&candidate, &stored), Verification::Mismatch);
        }
        assert_eq!(hasher.verify(&password, "not a phc string"), Verification::Mismatch);
    }

    #[test]
    fn hashes_interoperate_with_the_argon2_crates_own_and_reuse_one_working_memory() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = cheap();
        let password = Password::for_login("correct horse battery staple".into()).unwrap();
        // Ours verifies with the crate's verifier…
        let ours = hasher.hash(&password).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        );
        // …and one the crate made (as every stored hash was) verifies with ours.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = hasher
            .argon2
            .hash_password(password.expose().as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert_eq!(hasher.verify(&password, &theirs), Verification::Match);
        let wrong = Password::for_login("correct horse battery stapler".into()).unwrap();
        assert_eq!(hasher.verify(&wrong, &theirs), Verification::Mismatch);
        // One working memory per thread, the size of the largest hash it made.
        let blocks = hasher.argon2.params().block_count();
        let before = BLOCKS.with(|m| m.borrow().as_ptr());
        hasher.hash(&password).unwrap();
        assert_eq!(BLOCKS.with(|m| m.borrow().len()), blocks);
        assert_eq!(BLOCKS.with(|m| m.borrow().as_ptr()), before, "reused, not reallocated");
    }

    #[test]
    fn a_hash_under_old_parameters_is_upgraded_on_match() {
        let old = cheap();
        let password = Password::for_login("Correct Horse".into()).expect("ok");
        let stored = old.hash(&password).expect("hash");
        let current = PasswordHasher::new(HashParams {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .expect("valid");
        match current.verify(&password, &stored) {
            Verification::MatchRehashed(new_hash) => {
                assert!(new_hash.starts_with("$argon2id$v=19$m=128,t=1,p=1$"));
                assert_eq!(current.verify(&password, &new_hash), Verification::Match);
            }
            other => panic!("expected a rehash, got {other:?}"),
        }
    }
}

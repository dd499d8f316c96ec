//! Randomness for secrets, straight from the operating system's CSPRNG.

/// Fills `buf` from the OS CSPRNG.
///
/// # Panics
/// If the operating system cannot supply randomness. There is no safe fallback for a
/// secret, so refusing to continue is the only correct answer.
#[allow(clippy::expect_used)]
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// 32 random bytes.
pub fn bytes32() -> [u8; 32] {
    let mut buf = [0u8; 32];
    fill(&mut buf);
    buf
}

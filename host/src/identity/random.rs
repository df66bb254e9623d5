//! Random secrets for tokens, tickets, keys and challenges, from the operating system's source.

use base64::Engine as _;

/// `N` random bytes.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes
}

/// A random URL-safe string carrying `N` random bytes.
pub(crate) fn random_token<const N: usize>() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

//! Secrets the server hands out — user API tokens (`pwu_`), enrollment tokens (`pwe_`) and host
//! credentials (`pwh_`) — and the digests it keeps of them (never the secrets themselves).

/// What a secret is for, by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    User,
    Enrollment,
    Host,
}

impl SecretKind {
    pub fn prefix(self) -> &'static str {
        match self {
            SecretKind::User => "pwu_",
            SecretKind::Enrollment => "pwe_",
            SecretKind::Host => "pwh_",
        }
    }

    /// The kind a presented secret claims by its prefix.
    pub fn of(secret: &str) -> Option<SecretKind> {
        [SecretKind::User, SecretKind::Enrollment, SecretKind::Host]
            .into_iter()
            .find(|k| secret.starts_with(k.prefix()))
    }
}

/// A new secret: the prefix and 32 random bytes in hex.
pub fn generate(kind: SecretKind) -> String {
    format!("{}{}", kind.prefix(), random_hex(32))
}

/// `bytes` random bytes from the system's source, in hex (secrets, job ids).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .expect("the system's random source works");
    patchwarden_model::fleet::hex(&buf)
}

/// The digest stored for a secret (hex SHA-256). Secrets are 256-bit random values, so a plain
/// digest suffices: there is nothing to guess.
pub fn digest(secret: &str) -> String {
    patchwarden_model::fleet::sha256_hex(secret.as_bytes())
}

/// A new job id (`job-` and 24 hex digits).
pub fn job_id() -> String {
    format!("job-{}", random_hex(12))
}

/// A new change id (`chg-` and 16 hex digits).
pub fn change_id() -> String {
    format!("chg-{}", random_hex(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_stored_as_digests() {
        let a = generate(SecretKind::Host);
        let b = generate(SecretKind::Host);
        assert_ne!(a, b);
        assert!(a.starts_with("pwh_") && a.len() == 4 + 64, "{a}");
        assert_eq!(SecretKind::of(&a), Some(SecretKind::Host));
        assert_eq!(SecretKind::of("Bearer x"), None);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert!(!digest(&a).contains(&a[4..]));
    }
}

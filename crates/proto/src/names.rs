//! Validation of environment, cluster and configuration key names.

/// A name that does not follow its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct NameError {
    /// What kind of name it was.
    pub what: &'static str,
    /// The offending value.
    pub value: String,
    /// The rule it broke.
    pub rule: &'static str,
}

fn check(
    what: &'static str,
    value: &str,
    max: usize,
    rule: &'static str,
    first: impl Fn(u8) -> bool,
    rest: impl Fn(u8) -> bool,
) -> Result<(), NameError> {
    let b = value.as_bytes();
    let ok = !b.is_empty() && b.len() <= max && first(b[0]) && b[1..].iter().all(|&c| rest(c));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what,
            value: value.to_owned(),
            rule,
        })
    }
}

/// Environment names: `[a-z0-9][a-z0-9-]{0,31}` (DESIGN §1).
pub fn validate_environment(env: &str) -> Result<(), NameError> {
    let lower = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    check(
        "environment",
        env,
        32,
        "must match [a-z0-9][a-z0-9-]{0,31}",
        lower,
        |c| lower(c) || c == b'-',
    )
}

/// Cluster names: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn validate_cluster(cluster: &str) -> Result<(), NameError> {
    check(
        "cluster",
        cluster,
        64,
        "must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}",
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'),
    )
}

/// Configuration keys: 1 to 1024 bytes of `[A-Za-z0-9._/-]`, such as
/// `app/orders` or `hook/app/orders/node1`.
pub fn validate_key(key: &str) -> Result<(), NameError> {
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/');
    check(
        "key",
        key,
        1024,
        "must be 1-1024 characters of [A-Za-z0-9._/-]",
        ok,
        ok,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments() {
        for ok in ["production", "dev-2", "0"] {
            validate_environment(ok).unwrap();
        }
        for bad in ["", "Prod", "-x", "a b", &"x".repeat(33)] {
            assert!(validate_environment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clusters_and_keys() {
        validate_cluster("eu-west.1_a").unwrap();
        assert!(validate_cluster(".x").is_err());
        validate_key("app/orders").unwrap();
        assert!(validate_key("app orders").is_err());
        assert!(validate_key("").is_err());
    }
}

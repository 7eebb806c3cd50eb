//! Syntax rules for names: DNS-1123 labels, environment variable names, label keys and
//! values. Each check returns `Err` with a sentence saying what is allowed.

/// Longest DNS-1123 label (metadata.name, namespace, operator and port names).
pub const MAX_LABEL_LEN: usize = 63;

/// Longest DNS-1123 subdomain (label/annotation key prefixes).
pub const MAX_SUBDOMAIN_LEN: usize = 253;

/// What a DNS-1123 label may contain, for error messages.
pub const DNS1123_LABEL_RULE: &str = "must be a DNS-1123 label: 1 to 63 characters, \
     lower-case letters a-z, digits 0-9 and '-', starting and ending with a letter or digit";

/// Checks a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
pub fn check_dns1123_label(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_LABEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else if name.len() > MAX_LABEL_LEN {
        Err(format!(
            "{:?} is {} characters long; {DNS1123_LABEL_RULE}",
            truncate(name),
            name.len()
        ))
    } else {
        Err(format!("{name:?} is not valid; {DNS1123_LABEL_RULE}"))
    }
}

/// Checks a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn check_dns1123_subdomain(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SUBDOMAIN_LEN
        && name.split('.').all(|l| check_dns1123_label(l).is_ok());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a valid DNS-1123 subdomain: at most 253 characters, dot-separated \
             labels of lower-case letters, digits and '-'",
            truncate(name)
        ))
    }
}

/// Checks an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let valid = match bytes.next() {
        Some(first) => {
            (first.is_ascii_alphabetic() || first == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a valid environment variable name: must match [A-Za-z_][A-Za-z0-9_]*",
            truncate(name)
        ))
    }
}

/// The name part of a qualified key: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, ≤ 63.
fn is_qualified_name_part(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric)
}

/// Checks a label or annotation key as Kubernetes does: an optional DNS-1123 subdomain
/// prefix and `/`, then a name of at most 63 characters of letters, digits, `-`, `_`, `.`,
/// starting and ending with a letter or digit (e.g. `app.kubernetes.io/name`, `team`).
pub fn check_qualified_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| check_dns1123_subdomain(p).is_ok());
    if prefix_ok && is_qualified_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a valid key: an optional DNS-1123 subdomain prefix and '/', then 1 to \
             63 characters of letters, digits, '-', '_' and '.', starting and ending with a \
             letter or digit (e.g. \"app.kubernetes.io/name\")",
            truncate(key)
        ))
    }
}

/// Checks a label value: empty, or at most 63 characters of letters, digits, `-`, `_`, `.`,
/// starting and ending with a letter or digit.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a valid label value: empty, or at most 63 characters of letters, \
             digits, '-', '_' and '.', starting and ending with a letter or digit",
            truncate(value)
        ))
    }
}

/// Shortens very long names for messages.
fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "wordcount", "a-b", "0abc", "x1", &"a".repeat(63)] {
            assert!(check_dns1123_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a.b", "é", &"a".repeat(64)] {
            let err = check_dns1123_label(bad).expect_err(bad);
            assert!(err.contains("DNS-1123 label"), "{err}");
        }
        let err = check_dns1123_label(&"a".repeat(64)).expect_err("too long");
        assert!(err.contains("64 characters long"), "{err}");
    }

    #[test]
    fn env_names() {
        for ok in ["A", "_", "a_b1", "PYTHONPATH"] {
            assert!(check_env_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qualified_keys_and_label_values() {
        for ok in ["team", "app.kubernetes.io/name", "a_b.c-d", "example.com/X"] {
            assert!(check_qualified_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/x", "a/", "-a", "a b", "Ex_ample.com/x", "a/b/c"] {
            assert!(check_qualified_key(bad).is_err(), "{bad}");
        }
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_3-x").is_ok());
        assert!(check_label_value("has space").is_err());
        assert!(check_label_value(&"x".repeat(64)).is_err());
    }
}

//! Validated names that come from outside (tags, events, parameters). Anything outside AWS's
//! own patterns is rejected before it reaches an API call, a document parameter or a log field.

use std::fmt;

/// Why an outside name was rejected. The offending value is shown escaped and shortened.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("cluster name {0} is not valid (expected [A-Za-z0-9][A-Za-z0-9_.-]{{0,62}})")]
    Cluster(String),
    #[error("instance id {0} is not valid (expected i- and 8 or 17 hex digits)")]
    Instance(String),
    #[error("Auto Scaling group name {0} is not valid (1-255 printable characters, no ':' )")]
    Group(String),
    #[error("lifecycle hook name {0} is not valid (expected [A-Za-z0-9_./-]{{1,255}})")]
    Hook(String),
    #[error("lifecycle action token {0} is not valid (expected a 36-character UUID)")]
    ActionToken(String),
}

/// Quotes and escapes an outside value for an error message, shortened to `max` characters, so a
/// hostile string (newlines, control characters, ANSI escapes) cannot forge log lines.
pub fn printable(value: &str, max: usize) -> String {
    let mut shown: String = value.chars().take(max).collect();
    if value.chars().count() > max {
        shown.push('…');
    }
    format!("{shown:?}")
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $err:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, NameError> {
                let check: fn(&str) -> bool = $check;
                if check(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(NameError::$err(printable(value, 64)))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_name!(
    /// A cluster's name, the value of the `joinkeeper:cluster` tag.
    ClusterName,
    Cluster,
    |v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    }
);

validated_name!(
    /// An EC2 instance id (`i-` and 8 or 17 lowercase hex digits).
    InstanceId,
    Instance,
    |v| {
        v.strip_prefix("i-").is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        })
    }
);

validated_name!(
    /// An Auto Scaling group name: 1–255 characters, printable, no colon (AWS forbids it in
    /// names) and no control characters.
    GroupName,
    Group,
    |v| !v.is_empty() && v.len() <= 255 && !v.contains(':') && v.chars().all(|c| !c.is_control())
);

validated_name!(
    /// A lifecycle hook name (AWS: `[A-Za-z0-9\-_\/]+`, 1–255; dots allowed too).
    HookName,
    Hook,
    |v| !v.is_empty() && v.len() <= 255 && v.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'/' | b'.'))
);

validated_name!(
    /// A lifecycle action token (a UUID).
    ActionToken,
    ActionToken,
    |v| v.len() == 36 && v.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        for good in ["demo", "prod-eu.1", "A_b", &"x".repeat(63)] {
            assert!(ClusterName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "a'b",
            "$(id)",
            "a\nb",
            &"x".repeat(64),
            "é",
        ] {
            assert!(ClusterName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instance_ids() {
        for good in ["i-0123abcd", "i-0123456789abcdef0"] {
            assert!(InstanceId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "i-",
            "i-0123ABCD",
            "i-012",
            "i-0123abcd; reboot",
            "x-0123abcd",
            "i-0123456789abcdef01",
        ] {
            assert!(InstanceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_hook_and_token() {
        assert!(GroupName::parse("demo-workers").is_ok());
        assert!(GroupName::parse("a:b").is_err());
        assert!(GroupName::parse("a\u{1b}[31mred").is_err());
        assert!(HookName::parse("joinkeeper-launch").is_ok());
        assert!(HookName::parse("x y").is_err());
        assert!(ActionToken::parse("3e1f4b8c-1c5a-4f7b-9d2e-2b7c1f0a9e11").is_ok());
        assert!(ActionToken::parse("not-a-token").is_err());
    }

    #[test]
    fn printable_escapes_and_shortens() {
        assert_eq!(printable("a\nb", 10), "\"a\\nb\"");
        assert_eq!(printable("abcdef", 3), "\"abc…\"");
    }
}

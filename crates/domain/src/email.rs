//! Email addresses as account identifiers.

use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// The longest address accepted (RFC 5321's path limit minus the angle brackets).
pub const MAX_EMAIL_LENGTH: usize = 254;

/// A normalized email address: trimmed, lower-cased, shaped like `local@domain`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_EMAIL_LENGTH} characters")]
    TooLong,
    #[error("must look like local@domain")]
    Malformed,
    #[error("must not contain control or format characters (zero-width spaces, bidi controls)")]
    Invisible,
}

impl Email {
    /// Normalizes and checks an address typed by a person.
    ///
    /// The check is intentionally shallow (one `@`, non-empty sides, a dot-free or dotted
    /// domain without empty labels, no whitespace or control characters): full RFC 5322
    /// validation rejects real addresses and proves nothing about deliverability.
    ///
    /// It is NFKC-normalised and lower-cased, so that visually identical addresses typed
    /// differently are one account, and refused if it holds a control or format
    /// character (Unicode Cc or Cf: zero-width spaces and joiners, bidi overrides), which
    /// would let two accounts look alike.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let normalized: String = raw.trim().nfkc().collect::<String>().to_lowercase().nfkc().collect();
        if normalized
            .chars()
            .any(|c| matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format))
        {
            return Err(EmailError::Invisible);
        }
        if normalized.is_empty() {
            return Err(EmailError::Empty);
        }
        if normalized.chars().count() > MAX_EMAIL_LENGTH {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = normalized.split_once('@').ok_or(EmailError::Malformed)?;
        let well_formed = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !domain.split('.').any(str::is_empty)
            && !normalized
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
        if !well_formed {
            return Err(EmailError::Malformed);
        }
        Ok(Self(normalized))
    }
}

crate::id::text_value!(Email);

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        let email = Email::parse("  Ada.Lovelace@Example.COM \n").expect("valid");
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "plainaddress",
            "@example.com",
            "ada@",
            "ada@@example.com",
            "ada@exa mple.com",
            "ada@example..com",
            "ada@.example.com",
            "a da@example.com",
            "ada@example.com.",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad:?}");
        }
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
    }

    #[test]
    fn normalizes_compatibility_forms() {
        // Fullwidth letters and the "ﬁ" ligature are the same address as their plain forms.
        let fullwidth = Email::parse("\u{FF21}da@example.com").expect("valid");
        assert_eq!(fullwidth.as_str(), "ada@example.com");
        assert_eq!(
            Email::parse("of\u{FB01}ce@example.com").expect("valid").as_str(),
            "office@example.com"
        );
        // Composed and decomposed accents are one address.
        assert_eq!(
            Email::parse("Jose\u{0301}@example.com").expect("valid"),
            Email::parse("jos\u{00E9}@example.com").expect("valid")
        );
    }

    #[test]
    fn refuses_control_and_format_characters() {
        for bad in [
            "ada\u{200B}@example.com", // zero-width space
            "ada\u{200D}@example.com", // zero-width joiner
            "ada@exam\u{202E}elp.com", // right-to-left override
            "\u{2066}ada@example.com", // left-to-right isolate
            "ada\u{FEFF}@example.com", // byte-order mark
            "ada\u{0007}@example.com", // bell
            "ada\u{00AD}@example.com", // soft hyphen
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invisible), "{bad:?}");
        }
    }

    #[test]
    fn enforces_the_length_cap() {
        let at_cap = format!("{}@example.com", "a".repeat(MAX_EMAIL_LENGTH - 12));
        assert!(Email::parse(&at_cap).is_ok());
        let over = format!("{}@example.com", "a".repeat(MAX_EMAIL_LENGTH - 11));
        assert_eq!(Email::parse(&over), Err(EmailError::TooLong));
    }
}

//! Secrets stay wrapped in [`SecretString`] from the moment they are read: no `Debug`, log line or error can print
//! them. [`expose`] is the one way to read one, for the one place that must send it (an HTTP header).

use secrecy::{ExposeSecret, SecretString};

/// Exposes a secret for the one place that must send it.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

/// Parses the content of a client secret file (at start-up and on every rotation): UTF-8, trimmed, printable
/// ASCII.
pub fn parse_secret(content: &[u8]) -> Result<SecretString, String> {
    let text = std::str::from_utf8(content)
        .map_err(|_| "is not UTF-8".to_owned())?
        .trim();
    check_header_value(text).map_err(str::to_owned)?;
    Ok(SecretString::from(text.to_owned()))
}

/// Whether `value` can be sent as an HTTP header value: not empty, printable ASCII.
pub fn check_header_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err("must be printable ASCII");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_trimmed_and_must_be_printable_ascii() {
        assert_eq!(
            parse_secret(b"  s3cr3t\n").map(|s| expose(&s).to_owned()),
            Ok("s3cr3t".to_owned())
        );
        assert!(parse_secret(b"\n").is_err());
        assert!(parse_secret("sécret".as_bytes()).is_err());
        assert!(parse_secret(&[0xff, 0xfe]).is_err());
    }
}

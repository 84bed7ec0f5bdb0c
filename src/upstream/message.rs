//! KGeN's own error text, made safe to hand to a caller: one short line, no control or invisible characters, and
//! never the client secret, however KGeN quotes it.

/// Most characters of KGeN's own error message passed on to the caller.
pub const MAX_UPSTREAM_MESSAGE_CHARS: usize = 256;
/// What the caller sees instead of KGeN's message when the client secret could not be scrubbed from it.
pub const WITHHELD_UPSTREAM_MESSAGE: &str =
    "[upstream message withheld: it contained the client secret]";
/// What replaces the client secret in KGeN's message.
const REDACTED: &str = "[redacted]";

/// Makes KGeN's own error text safe to hand to a caller, in this order: control characters and invisible
/// formatting characters removed (line breaks become spaces), white space collapsed to single spaces, then every
/// occurrence of the client secret replaced by `[redacted]`, then at most [`MAX_UPSTREAM_MESSAGE_CHARS`]
/// characters kept.
///
/// The secret is looked for in the text as the caller would read it: after the characters that could split it
/// are gone, ASCII case ignored (secrets are ASCII) and white space ignored (a line break inside the secret
/// becomes a space). If the result still contains the secret (the marker can combine with the text next to
/// it), the whole message is withheld ([`WITHHELD_UPSTREAM_MESSAGE`]).
pub fn sanitize_upstream_message(raw: &str, secret: &str) -> String {
    let text = collapse(raw);
    // The secret as it is matched: what survives the same cleaning, white space ignored.
    let key: Vec<char> = collapse(secret).chars().filter(|c| *c != ' ').collect();
    let scrubbed = if key.is_empty() {
        text
    } else {
        redact(&text, &key)
    };
    let mut out: String = scrubbed.chars().take(MAX_UPSTREAM_MESSAGE_CHARS).collect();
    out.truncate(out.trim_end().len());
    if key.is_empty() || find_secret(&out.chars().collect::<Vec<_>>(), &key, 0).is_none() {
        return out;
    }
    let withheld: Vec<char> = WITHHELD_UPSTREAM_MESSAGE.chars().collect();
    if find_secret(&withheld, &key, 0).is_none() {
        WITHHELD_UPSTREAM_MESSAGE.to_owned()
    } else {
        // A secret so short that even the notice contains it.
        String::new()
    }
}

/// Drops control and invisible formatting characters; runs of white space become one space, none at either end.
fn collapse(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if c.is_control() || is_invisible_format(c) {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Unicode formatting characters that render as nothing (zero-width spaces and joiners, bidirectional controls,
/// the byte order mark, soft hyphens): inside a secret they would hide it from a plain search.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// `text` with every occurrence of `key` (see [`find_secret`]) replaced by [`REDACTED`].
fn redact(text: &str, key: &[char]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    while let Some((start, end)) = find_secret(&chars, key, copied) {
        out.extend(&chars[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.extend(&chars[copied..]);
    out
}

/// The first occurrence of `key` in `text` at or after `from`, ASCII case ignored and spaces in `text` skipped
/// (`key` has none): the range of `text` it covers.
fn find_secret(text: &[char], key: &[char], from: usize) -> Option<(usize, usize)> {
    let (first, rest) = key.split_first()?;
    (from..text.len()).find_map(|start| {
        if !text[start].eq_ignore_ascii_case(first) {
            return None;
        }
        let mut at = start + 1;
        for wanted in rest {
            while text.get(at) == Some(&' ') {
                at += 1;
            }
            if !text.get(at)?.eq_ignore_ascii_case(wanted) {
                return None;
            }
            at += 1;
        }
        Some((start, at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_messages_are_one_short_line_without_the_secret() {
        let raw = format!(
            "bad\r\n  secret s3cr3t\u{0}\u{1b}[31m! {}",
            "x".repeat(1000)
        );
        let clean = sanitize_upstream_message(&raw, "s3cr3t");
        assert!(clean.starts_with("bad secret [redacted]"), "{clean}");
        assert!(!clean.contains("s3cr3t"));
        assert!(!clean.chars().any(char::is_control));
        assert_eq!(clean.chars().count(), MAX_UPSTREAM_MESSAGE_CHARS);
        assert_eq!(sanitize_upstream_message("  fine  ", ""), "fine");
    }

    const SECRET: &str = "s3cr3t-Value";

    /// Asserts `clean` is fit for a caller: the secret nowhere in it (ASCII case and spaces ignored), no control
    /// characters, not longer than the limit.
    #[track_caller]
    fn assert_fit_for_a_caller(clean: &str, secret: &str) {
        let squeezed = |s: &str| s.replace(' ', "").to_ascii_lowercase();
        assert!(
            !squeezed(clean).contains(&squeezed(secret)),
            "secret {secret:?} in {clean:?}"
        );
        assert!(!clean.chars().any(char::is_control), "{clean:?}");
        assert!(clean.chars().count() <= MAX_UPSTREAM_MESSAGE_CHARS);
    }

    #[test]
    fn a_secret_split_by_a_nul_is_scrubbed_instead_of_reaching_the_caller_whole() {
        let clean = sanitize_upstream_message("bad secret s3cr3t\u{0}-Value given", SECRET);
        assert_eq!(clean, "bad secret [redacted] given");
        let clean = sanitize_upstream_message("s\u{0}3\u{0}c\u{0}r3t-Valu\u{0}e", SECRET);
        assert_eq!(clean, "[redacted]");
    }

    #[test]
    fn a_secret_split_by_an_escape_sequence_or_a_del_is_scrubbed() {
        for raw in [
            "x s3cr\u{1b}3t-Value y",
            "x s3cr3t\u{7f}-Value y",
            "x s3\u{9b}cr3t-Value y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_fit_for_a_caller(&clean, SECRET);
            assert!(clean.starts_with("x ") && clean.ends_with(" y"), "{clean}");
        }
    }

    #[test]
    fn a_secret_split_by_a_line_break_is_scrubbed_not_passed_on_with_a_space_inside() {
        for raw in [
            "x s3cr3t\r\n-Value y",
            "x s3cr3t\n-Value y",
            "x s3cr3t\r-Value y",
            "x s3\tcr3t  -Va\u{2028}lue y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_in_another_case_is_scrubbed() {
        for raw in [
            "x S3CR3T-VALUE y",
            "x s3cr3t-value y",
            "x S3Cr3T\u{0}-vAlUe y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_split_by_an_invisible_formatting_character_is_scrubbed() {
        for raw in [
            "x s3cr3t\u{200b}-Value y",
            "x s3cr3t\u{feff}-Value y",
            "x s3cr3t\u{202e}-Value y",
            "x s3cr3t\u{ad}-Value y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_with_spaces_inside_is_scrubbed_in_its_collapsed_form_too() {
        let secret = "pass  word with\tspaces";
        for raw in [
            "x pass  word with\tspaces y",
            "x pass word with spaces y",
            "x PASS\u{0} WORD with\r\nspaces y",
        ] {
            let clean = sanitize_upstream_message(raw, secret);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_that_the_marker_completes_withholds_the_whole_message() {
        // "d]x" right after a scrubbed "d]x": "[redacted]" + "x" reads "…d]x" again.
        let clean = sanitize_upstream_message("key d]xx was wrong", "d]x");
        assert_eq!(clean, WITHHELD_UPSTREAM_MESSAGE);
        assert_fit_for_a_caller(&clean, "d]x");
        // The marker next to the secret's own text, split by a control character.
        let clean = sanitize_upstream_message("[redacte\u{0}d]xx", "d]x");
        assert_fit_for_a_caller(&clean, "d]x");
    }

    #[test]
    fn a_secret_so_short_that_the_notice_contains_it_leaves_an_empty_message() {
        let clean = sanitize_upstream_message("key e", "e");
        assert_eq!(clean, "");
    }

    #[test]
    fn the_secret_scrub_runs_before_the_message_is_cut_to_its_limit() {
        let raw = format!(
            "{} s3cr\u{0}3t-Value",
            "a".repeat(MAX_UPSTREAM_MESSAGE_CHARS - 8)
        );
        let clean = sanitize_upstream_message(&raw, SECRET);
        assert_fit_for_a_caller(&clean, SECRET);
        assert!(clean.ends_with(" [redact"), "{clean}");
        assert!(!clean.contains("s3cr"), "no prefix of the secret: {clean}");
    }

    #[test]
    fn a_message_without_the_secret_is_only_cleaned() {
        assert_eq!(
            sanitize_upstream_message("\u{0} user\n\n  not found \u{1b}", SECRET),
            "user not found"
        );
        assert_eq!(
            sanitize_upstream_message("s3cr3t is not the whole secret", SECRET),
            "s3cr3t is not the whole secret"
        );
    }
}

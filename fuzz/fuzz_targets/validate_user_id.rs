//! `validate_user_id` must accept exactly the ids docs/errors.md promises: non-empty after trimming white space, at
//! most 256 bytes of UTF-8, no control characters. Any disagreement, either way, is a failure.
#![no_main]

use kgen_gateway::validate_user_id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let expected = !s.trim().is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
    let got = validate_user_id(s);
    assert_eq!(
        got.is_ok(),
        expected,
        "validate_user_id({s:?}) = {got:?}, but the rule says {}",
        if expected { "Ok" } else { "Err" }
    );
});

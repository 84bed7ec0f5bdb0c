//! Optional caller authentication with bearer tokens.
//!
//! Each calling service gets its own token, listed in a tokens file as `name:token` lines, optionally followed by
//! the tenants it may use: `name:token tenants=callbreak,ludo` (or `tenants=*` for all). A line without
//! `tenants=` grants only the default tenant (least privilege; see [`TenantGrant`]). A call presents
//! `authorization: Bearer <token>`; [`CallerTokens::authenticate`] answers with the caller's name (for logs and
//! metrics) or a reason to refuse the call.
//!
//! Tokens are kept only as SHA-256 digests, and a presented token is compared against every configured one in
//! constant time, so neither the time a refusal takes nor a memory dump tells which token was close. No error,
//! `Debug` or `Display` output ever contains a token. [`CallerAuth`] lets a file watcher swap in a new set of
//! tokens while calls in flight keep the snapshot they started with.

use std::{fmt, io, path::Path, path::PathBuf, sync::Arc};

use arc_swap::{ArcSwap, Guard};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{
    access::{self, Peer},
    status,
};
use crate::{
    core::{CallError, Caller, Error, TenantGrant},
    support::headers,
};

/// Why a tokens file is unusable, or why a call is not authenticated.
///
/// Messages name line numbers and caller names, never a token (neither a configured nor a presented one).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The tokens file cannot be read (or is not UTF-8).
    #[error("cannot read the caller tokens file {}: {error}", path.display())]
    Unreadable {
        /// The tokens file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },
    /// A line is not `name:token`.
    #[error("line {line}: expected `name:token`")]
    MissingSeparator {
        /// 1-based line number.
        line: usize,
    },
    /// A line has nothing before its `:`.
    #[error("line {line}: the caller name is empty")]
    EmptyName {
        /// 1-based line number.
        line: usize,
    },
    /// A line has nothing after its `:`.
    #[error("line {line}: the token is empty")]
    EmptyToken {
        /// 1-based line number.
        line: usize,
    },
    /// A caller name with white space or characters other than printable ASCII.
    #[error("line {line}: the caller name must be printable ASCII without spaces")]
    InvalidName {
        /// 1-based line number.
        line: usize,
    },
    /// A token with white space or characters other than printable ASCII (it could never be sent in a header).
    #[error("line {line}: the token must be printable ASCII without spaces")]
    InvalidToken {
        /// 1-based line number.
        line: usize,
    },
    /// A `key=` after the token that is not `tenants=` (e.g. `tenant=`).
    #[error("line {line}: `{key}=` is not a setting of the tokens file; the tenants a caller may use are given as `tenants=a,b` (or `tenants=*`)")]
    UnknownSetting {
        /// The line, from 1.
        line: usize,
        /// The key as written (printable ASCII, at most 32 characters).
        key: String,
    },
    /// `tenants=` is not `*` or a comma-separated list of tenant names.
    #[error("line {line}: `tenants=` must be `*` or comma-separated tenant names")]
    InvalidTenants {
        /// 1-based line number.
        line: usize,
    },
    /// Two lines for the same caller: which token is meant would be a guess.
    #[error("line {line}: caller {name:?} is already listed on line {first_line}")]
    DuplicateName {
        /// 1-based line number of the repeat.
        line: usize,
        /// 1-based line number of the first listing.
        first_line: usize,
        /// The caller's name (names are not secret).
        name: String,
    },
    /// Two callers with the same token: a call could not be attributed to one of them.
    #[error("line {line}: the token is already used by the caller on line {first_line}")]
    DuplicateToken {
        /// 1-based line number of the repeat.
        line: usize,
        /// 1-based line number of the first use.
        first_line: usize,
    },
    /// No tokens at all: authentication would refuse every call, which is surely a mistake.
    #[error("the caller tokens file lists no tokens")]
    NoTokens,
    /// The call has no `authorization` header.
    #[error("no authorization header: expected `Bearer <token>`")]
    MissingCredentials,
    /// The `authorization` header holds bytes that are not visible ASCII (a token never does).
    #[error("the authorization header is not printable ASCII: expected `Bearer <token>`")]
    NonAsciiCredentials,
    /// The `authorization` header uses another scheme (e.g. `Basic`).
    #[error("the authorization header is not a bearer token: expected `Bearer <token>`")]
    WrongScheme,
    /// `Bearer` with an empty token, more than one space or a token that is not printable ASCII.
    #[error("malformed bearer token: expected `Bearer <token>` with a single space")]
    MalformedCredentials,
    /// A well-formed bearer token that is not configured.
    #[error("unknown bearer token")]
    UnknownToken,
}

/// One line of the tokens file: a caller's name, the SHA-256 digest of its token (the token itself is not kept)
/// and the tenants it may use.
struct Entry {
    name: String,
    digest: [u8; 32],
    tenants: TenantGrant,
}

/// The callers allowed to call the gateway and their tokens, as parsed from a tokens file.
///
/// Only digests of the tokens are held, so neither `Debug` nor a heap dump reveals them.
pub struct CallerTokens {
    callers: Vec<Entry>,
}

impl fmt::Debug for CallerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerTokens")
            .field("callers", &self.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl CallerTokens {
    /// Parses a tokens file's text: one `name:token` per line, so each calling service can be told apart and
    /// have its token rotated on its own.
    ///
    /// Blank lines and lines starting with `#` are ignored and white space around lines, names and tokens is
    /// trimmed. Names and tokens must be non-empty printable ASCII without spaces; the token is everything after
    /// the first `:`. Duplicate names or tokens, and a file without any token, are errors.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut callers: Vec<Entry> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        // Editors on Windows may save a byte-order mark, which is not white space to `trim`.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            // A trailing ` tenants=…` (tokens hold no spaces, so it cannot be part of one).
            let (trimmed, tenants) = match trimmed.rsplit_once(char::is_whitespace) {
                Some((head, grant))
                    if grant.starts_with("tenants=")
                        && head
                            .split_once(':')
                            .is_some_and(|(_, token)| !token.trim().is_empty()) =>
                {
                    let grant = TenantGrant::parse(&grant["tenants=".len()..])
                        .ok_or(AuthError::InvalidTenants { line })?;
                    (head.trim_end(), grant)
                }
                // Any other trailing `key=value` after `name:token` is a setting the file does not have: most
                // likely `tenant=` for `tenants=`.
                Some((head, setting))
                    if setting.contains('=')
                        && head
                            .split_once(':')
                            .is_some_and(|(_, token)| !token.trim().is_empty()) =>
                {
                    let key = setting.split('=').next().unwrap_or_default();
                    return Err(AuthError::UnknownSetting {
                        line,
                        key: key
                            .chars()
                            .filter(char::is_ascii_graphic)
                            .take(32)
                            .collect(),
                    });
                }
                _ => (trimmed, TenantGrant::DefaultOnly),
            };
            let (name, token) = trimmed
                .split_once(':')
                .ok_or(AuthError::MissingSeparator { line })?;
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() {
                return Err(AuthError::EmptyName { line });
            }
            if token.is_empty() {
                return Err(AuthError::EmptyToken { line });
            }
            if !is_printable_ascii(name) {
                return Err(AuthError::InvalidName { line });
            }
            if !is_printable_ascii(token) {
                return Err(AuthError::InvalidToken { line });
            }
            let digest = digest(token);
            for (caller, &first_line) in callers.iter().zip(&lines_of) {
                if caller.name == name {
                    return Err(AuthError::DuplicateName {
                        line,
                        first_line,
                        name: name.to_owned(),
                    });
                }
                if caller.digest == digest {
                    return Err(AuthError::DuplicateToken { line, first_line });
                }
            }
            callers.push(Entry {
                name: name.to_owned(),
                digest,
                tenants,
            });
            lines_of.push(line);
        }
        if callers.is_empty() {
            return Err(AuthError::NoTokens);
        }
        Ok(Self { callers })
    }

    /// Reads and parses a tokens file (see [`CallerTokens::parse`]); its text is wiped from memory afterwards.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|error| AuthError::Unreadable {
                path: path.to_owned(),
                error,
            })?;
        Self::parse(text.expose_secret())
    }

    /// The configured callers' names, in file order, for start-up and reload logs.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.callers.iter().map(|caller| caller.name.as_str())
    }

    /// Each caller's name with the tenants it may use.
    pub fn grants(&self) -> impl Iterator<Item = (&str, &TenantGrant)> {
        self.callers
            .iter()
            .map(|caller| (caller.name.as_str(), &caller.tenants))
    }

    /// Checks an `authorization` header value and returns the name of the caller whose token it carries.
    ///
    /// Exactly `Bearer <token>` is accepted (the scheme in any case, one space). The token's digest is compared
    /// with every configured digest in constant time, without stopping at a match, so timing does not reveal
    /// which token (or how much of one) was right.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<&str, AuthError> {
        self.authenticate_with_grant(authorization)
            .map(|(name, _)| name)
    }

    /// As [`CallerTokens::authenticate`], also returning the tenants the caller may use.
    pub fn authenticate_with_grant(
        &self,
        authorization: Option<&str>,
    ) -> Result<(&str, &TenantGrant), AuthError> {
        let header = authorization.ok_or(AuthError::MissingCredentials)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::WrongScheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::WrongScheme);
        }
        if token.is_empty() || !is_printable_ascii(token) {
            return Err(AuthError::MalformedCredentials);
        }
        let presented = digest(token);
        // 1-based position of the matching caller, 0 for none; selected without branching on the comparison.
        let mut found: u64 = 0;
        for (position, caller) in (1u64..).zip(&self.callers) {
            let matches = caller.digest.as_slice().ct_eq(presented.as_slice());
            found = u64::conditional_select(&found, &position, matches);
        }
        found
            .checked_sub(1)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.callers.get(index))
            .map(|caller| (caller.name.as_str(), &caller.tenants))
            .ok_or(AuthError::UnknownToken)
    }
}

/// The tokens calls are checked against, swappable at run time so tokens can be rotated without a restart.
///
/// Each call takes a snapshot with [`CallerAuth::current`] and authenticates against it; a concurrent
/// [`CallerAuth::replace`] affects only later snapshots.
pub struct CallerAuth {
    tokens: ArcSwap<CallerTokens>,
}

impl fmt::Debug for CallerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerAuth")
            .field("tokens", &*self.tokens.load())
            .finish()
    }
}

impl CallerAuth {
    /// Starts with the tokens loaded at start-up.
    pub fn new(tokens: CallerTokens) -> Self {
        Self {
            tokens: ArcSwap::from_pointee(tokens),
        }
    }

    /// The tokens in force now; cheap enough to call once per request, and stable for as long as it is held.
    pub fn current(&self) -> Guard<Arc<CallerTokens>> {
        self.tokens.load()
    }

    /// Swaps in a new set of tokens (after the tokens file changed); calls that start afterwards use it.
    pub fn replace(&self, tokens: CallerTokens) {
        self.tokens.store(Arc::new(tokens));
    }
}

/// Authenticates every call of the session service when caller authentication is on (`--caller-tokens-file`),
/// putting its [`Caller`] in the request extensions; without tokens every call passes as it is. The gRPC port's
/// router ([`super::Routes`]) runs it on the HTTP request before the session service sees it. A refused call is
/// logged (and, with the access log on, has its access line) here.
#[derive(Debug, Clone)]
pub struct CallerCheck {
    auth: Option<Arc<CallerAuth>>,
    access_log: bool,
}

impl CallerCheck {
    /// Checks callers against `auth` (`None`: every call passes); with `access_log`, a refused call logs its access
    /// line.
    pub fn new(auth: Option<Arc<CallerAuth>>, access_log: bool) -> Self {
        Self { auth, access_log }
    }

    /// Lets `request` through (with its [`Caller`] attached) or answers the `UNAUTHENTICATED` status to send.
    pub fn check<B>(&self, request: &mut http::Request<B>) -> Result<(), tonic::Status> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let access_log = self.access_log;
        let refuse = |error: AuthError| {
            let error = CallError::from(Error::CallerUnauthenticated(error.to_string()));
            status::log_failure(&error);
            if access_log {
                refused_access_line(request, &error);
            }
            tonic::Status::from(error)
        };
        let header = match request
            .headers()
            .get(headers::AUTHORIZATION)
            .map(|v| v.to_str())
        {
            None => None,
            Some(Ok(header)) => Some(header),
            Some(Err(_)) => return Err(refuse(AuthError::NonAsciiCredentials)),
        };
        let tokens = auth.current();
        let (name, grant) = tokens.authenticate_with_grant(header).map_err(refuse)?;
        let caller = Caller {
            name: name.to_owned(),
            tenants: grant.clone(),
        };
        request.extensions_mut().insert(caller);
        Ok(())
    }
}

/// The access line of a call refused here, before the session service and its call span.
fn refused_access_line<B>(request: &http::Request<B>, error: &CallError) {
    let (code, reason) = status::code_and_reason(&error.error);
    let request_id = request
        .headers()
        .get(headers::REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or("");
    access::Entry {
        method: request.uri().path().rsplit('/').next().unwrap_or(""),
        code,
        reason,
        latency: std::time::Duration::ZERO,
        upstream_status: None,
        attempts: 0,
        items: None,
        tenant: "",
        caller: "",
        request_id,
        peer: request.extensions().get::<Peer>().map(|peer| peer.0),
    }
    .log();
}

/// Names and tokens go into files and HTTP headers: visible ASCII only, no spaces or control characters.
fn is_printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

/// A fixed-size stand-in for a token, so comparisons take the same time whatever the tokens' lengths.
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# game backends allowed to create sessions

  matchmaker : mm-5f2c1e9a7b  
lobby:lb-0a1b2c3d:with-colons

\t# an indented comment
";

    fn tokens() -> CallerTokens {
        CallerTokens::parse(FILE).unwrap()
    }

    /// The variant of a parse error and the line it names.
    fn kind_and_line(err: &AuthError) -> (&'static str, usize) {
        match *err {
            AuthError::MissingSeparator { line } => ("MissingSeparator", line),
            AuthError::EmptyName { line } => ("EmptyName", line),
            AuthError::EmptyToken { line } => ("EmptyToken", line),
            AuthError::InvalidName { line } => ("InvalidName", line),
            AuthError::InvalidToken { line } => ("InvalidToken", line),
            AuthError::DuplicateName { line, .. } => ("DuplicateName", line),
            AuthError::DuplicateToken { line, .. } => ("DuplicateToken", line),
            _ => ("not a parse error", 0),
        }
    }

    #[test]
    fn comments_blank_lines_and_surrounding_white_space_are_ignored() {
        let tokens = tokens();
        assert_eq!(tokens.names().collect::<Vec<_>>(), ["matchmaker", "lobby"]);
        let with_bom_and_crlf = CallerTokens::parse("\u{feff}a:one\r\n\r\nb:two\r\n").unwrap();
        assert_eq!(with_bom_and_crlf.names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            tokens.authenticate(Some("Bearer mm-5f2c1e9a7b")).unwrap(),
            "matchmaker"
        );
    }

    #[test]
    fn the_token_is_everything_after_the_first_colon() {
        assert_eq!(
            tokens()
                .authenticate(Some("Bearer lb-0a1b2c3d:with-colons"))
                .unwrap(),
            "lobby"
        );
        assert!(matches!(
            tokens().authenticate(Some("Bearer lb-0a1b2c3d")),
            Err(AuthError::UnknownToken)
        ));
    }

    #[test]
    fn duplicate_names_are_rejected_with_both_line_numbers() {
        let err = CallerTokens::parse("a:one\n\nb:two\na:three\n").unwrap_err();
        assert!(
            matches!(
                &err,
                AuthError::DuplicateName { line: 4, first_line: 1, name } if name == "a"
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("three"), "{err}");
    }

    #[test]
    fn duplicate_tokens_are_rejected_because_the_caller_would_be_ambiguous() {
        let err = CallerTokens::parse("a:same-token\nb:same-token\n").unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::DuplicateToken {
                    line: 2,
                    first_line: 1
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("same-token"), "{err}");
    }

    #[test]
    fn a_misspelt_tenants_setting_is_named_instead_of_blaming_the_token() {
        let err = CallerTokens::parse("ok:fine\ngame:game-secret tenant=alpha\n").unwrap_err();
        assert!(
            matches!(&err, AuthError::UnknownSetting { line: 2, key } if key == "tenant"),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(shown.contains("`tenant=` is not a setting"), "{shown}");
        assert!(shown.contains("tenants=a,b"), "{shown}");
        assert!(!shown.contains("game-secret"), "{shown}");
    }

    #[test]
    fn bad_lines_are_rejected_with_their_line_number_and_without_the_token() {
        let cases = [
            ("ok:fine\nno-separator-secret\n", "MissingSeparator"),
            ("ok:fine\n:orphan-secret\n", "EmptyName"),
            ("ok:fine\nnameless:\n", "EmptyToken"),
            ("ok:fine\nbad name:spaced-secret\n", "InvalidName"),
            ("ok:fine\ncafé:accent-secret\n", "InvalidName"),
            ("ok:fine\nsvc:two word-secret\n", "InvalidToken"),
            ("ok:fine\nsvc:bell\u{7}-secret\n", "InvalidToken"),
        ];
        for (text, expected) in cases {
            let err = CallerTokens::parse(text).unwrap_err();
            assert_eq!(kind_and_line(&err), (expected, 2), "{text:?}: {err:?}");
            let shown = format!("{err} {err:?}");
            assert!(
                shown.contains("line 2") || shown.contains("line: 2"),
                "{shown}"
            );
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn a_trailing_tenants_list_restricts_the_caller_and_plain_lines_get_the_default_only() {
        let tokens = CallerTokens::parse(
            "a:tok-a\nb : tok-b   tenants=cb,ludo\nc:tok-c tenants=*\nd: tenants=x\n",
        )
        .unwrap();
        let grant = |t: &str| {
            tokens
                .authenticate_with_grant(Some(&format!("Bearer {t}")))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(grant("tok-a"), TenantGrant::DefaultOnly);
        assert_eq!(
            grant("tok-b"),
            TenantGrant::Only(vec!["cb".to_owned(), "ludo".to_owned()].into())
        );
        assert_eq!(grant("tok-c"), TenantGrant::All);
        // `d: tenants=x` has no token before it: `tenants=x` is the token, as before this syntax existed.
        assert_eq!(grant("tenants=x"), TenantGrant::DefaultOnly);
        let err = CallerTokens::parse("a:tok-a\nb:tok-b tenants=bad name\n").unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidToken { line: 2 }),
            "{err:?}"
        );
        let err = CallerTokens::parse("a:tok-a\nb:tok-b tenants=a,,b\n").unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidTenants { line: 2 }),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_without_tokens_is_rejected() {
        for text in ["", "\n\n", "# only a comment\n   \n"] {
            assert!(
                matches!(CallerTokens::parse(text), Err(AuthError::NoTokens)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_tokens_file_is_loaded_and_a_missing_one_is_named() {
        let path = std::env::temp_dir().join(format!("kgen-caller-tokens-{}", std::process::id()));
        std::fs::write(&path, FILE).unwrap();
        let loaded = CallerTokens::load(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            loaded.unwrap().names().collect::<Vec<_>>(),
            ["matchmaker", "lobby"]
        );

        let err = CallerTokens::load(&path).unwrap_err();
        assert!(matches!(err, AuthError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    }

    #[test]
    fn a_valid_token_authenticates_as_its_caller() {
        let tokens = tokens();
        assert_eq!(
            tokens.authenticate(Some("Bearer mm-5f2c1e9a7b")).unwrap(),
            "matchmaker"
        );
        assert_eq!(
            tokens
                .authenticate(Some("Bearer lb-0a1b2c3d:with-colons"))
                .unwrap(),
            "lobby"
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for header in [
            "bearer mm-5f2c1e9a7b",
            "BEARER mm-5f2c1e9a7b",
            "BeArEr mm-5f2c1e9a7b",
        ] {
            assert_eq!(
                tokens().authenticate(Some(header)).unwrap(),
                "matchmaker",
                "{header}"
            );
        }
    }

    #[test]
    fn a_wrong_token_is_unknown() {
        for token in ["mm-5f2c1e9a7c", "MM-5F2C1E9A7B", "nope"] {
            let header = format!("Bearer {token}");
            let err = tokens().authenticate(Some(&header)).unwrap_err();
            assert!(matches!(err, AuthError::UnknownToken), "{token}: {err:?}");
        }
    }

    #[test]
    fn a_prefix_or_extension_of_a_real_token_is_rejected() {
        for token in ["mm-5f2c1e9a7", "m", "mm-5f2c1e9a7bX", "mm-5f2c1e9a7b:"] {
            let header = format!("Bearer {token}");
            let err = tokens().authenticate(Some(&header)).unwrap_err();
            assert!(matches!(err, AuthError::UnknownToken), "{token}: {err:?}");
        }
    }

    #[test]
    fn a_missing_header_is_its_own_error() {
        assert!(matches!(
            tokens().authenticate(None),
            Err(AuthError::MissingCredentials)
        ));
    }

    #[test]
    fn other_schemes_are_rejected() {
        for header in [
            "Basic mm-5f2c1e9a7b",
            "Token mm-5f2c1e9a7b",
            "mm-5f2c1e9a7b",
            "Bearer",
            "Bearer\tmm-5f2c1e9a7b",
            "",
        ] {
            let err = tokens().authenticate(Some(header)).unwrap_err();
            assert!(matches!(err, AuthError::WrongScheme), "{header:?}: {err:?}");
        }
    }

    #[test]
    fn malformed_bearer_credentials_are_rejected() {
        for header in [
            "Bearer ",
            "Bearer  mm-5f2c1e9a7b",
            "Bearer mm-5f2c1e9a7b ",
            "Bearer mm-5f2c1e9a7b extra",
        ] {
            let err = tokens().authenticate(Some(header)).unwrap_err();
            assert!(
                matches!(err, AuthError::MalformedCredentials),
                "{header:?}: {err:?}"
            );
        }
    }

    #[test]
    fn debug_and_display_never_contain_a_token() {
        let tokens = tokens();
        let auth = CallerAuth::new(CallerTokens::parse(FILE).unwrap());
        let debug = format!("{tokens:?} {auth:?}");
        assert!(debug.contains("matchmaker"), "{debug}");
        for secret in ["mm-5f2c1e9a7b", "lb-0a1b2c3d", "5f2c", "0a1b"] {
            assert!(!debug.contains(secret), "{debug}");
        }

        for header in [
            None,
            Some("Basic presented-secret"),
            Some("Bearer presented-secret"),
            Some("Bearer  presented-secret"),
            Some("Bearer mm-5f2c1e9a7"),
        ] {
            let err = tokens.authenticate(header).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("presented-secret"), "{shown}");
            assert!(!shown.contains("mm-5f2c"), "{shown}");
        }
    }

    #[test]
    fn replace_takes_effect_for_the_next_call_but_not_for_a_snapshot_in_use() {
        let auth = CallerAuth::new(tokens());
        let before = auth.current();
        assert_eq!(
            before.authenticate(Some("Bearer mm-5f2c1e9a7b")).unwrap(),
            "matchmaker"
        );

        auth.replace(CallerTokens::parse("matchmaker:mm-rotated\n").unwrap());

        let after = auth.current();
        assert_eq!(
            after.authenticate(Some("Bearer mm-rotated")).unwrap(),
            "matchmaker"
        );
        assert!(matches!(
            after.authenticate(Some("Bearer mm-5f2c1e9a7b")),
            Err(AuthError::UnknownToken)
        ));
        // The snapshot taken before the rotation is unchanged.
        assert_eq!(
            before.authenticate(Some("Bearer mm-5f2c1e9a7b")).unwrap(),
            "matchmaker"
        );
    }
}

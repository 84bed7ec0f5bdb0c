//! The one step that reads files named by the settings: TLS material, the caller tokens, the CA bundle trusted for
//! KGeN, the client secret, and the tenants file (with the secret files it names). It runs after the flags were
//! checked and before any port is bound; every file that cannot be used is reported, one line each.

use std::{path::Path, path::PathBuf, sync::Arc};

use reqwest::Url;

use super::{args::GatewayArgs, check::Problems, CLIENT_SECRET_ENV};
use crate::{
    core::TenantsConfig,
    grpc::{tls_server_config, CallerAuth, CallerTokens, ServerTls},
    support::secrets::check_header_value,
    upstream::DEFAULT_UPSTREAM_URL,
};

const ID: &str = "--client-id / KGEN_CLIENT_ID";
const SECRET: &str = "--client-secret-file / KGEN_CLIENT_SECRET_FILE / KGEN_CLIENT_SECRET";
const TENANTS: &str = "--tenants-file / KGEN_TENANTS_FILE";

/// What the files named by the settings hold.
#[derive(Default)]
pub(super) struct Loaded {
    /// The gRPC port's TLS configuration.
    pub tls: Option<ServerTls>,
    /// The caller tokens, and the file they came from.
    pub caller_tokens: Option<(PathBuf, Arc<CallerAuth>)>,
    /// Extra CA certificates trusted for KGeN.
    pub extra_roots: Vec<reqwest::Certificate>,
    /// The flags' client id (empty without a flags' tenant).
    pub client_id: String,
    /// The flags' client secret (empty without a flags' tenant).
    pub client_secret: String,
    /// The file the secret came from, watched for rotations.
    pub secret_file: Option<PathBuf>,
    /// Credential settings given but unused in sandbox mode, by name.
    pub sandbox_ignores: Vec<&'static str>,
    /// The tenants file and its tenants.
    pub tenants: Option<(PathBuf, TenantsConfig)>,
}

/// Reads every file `args` names; `url` is the checked upstream URL (the tenants' fallback), `secret_env` the
/// value of `KGEN_CLIENT_SECRET`.
pub(super) fn files(
    args: &GatewayArgs,
    url: Option<&Url>,
    secret_env: Option<String>,
    problems: &mut Problems,
) -> Loaded {
    let mut loaded = Loaded {
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => problems.take(
                "--tls-cert / --tls-key / --tls-client-ca",
                tls_server_config(cert, key, args.tls_client_ca.as_deref()),
            ),
            _ => None,
        },
        caller_tokens: args.caller_tokens_file.as_ref().and_then(|path| {
            problems
                .take(
                    "--caller-tokens-file / KGEN_CALLER_TOKENS_FILE",
                    CallerTokens::load(path),
                )
                .map(|tokens| (path.clone(), Arc::new(CallerAuth::new(tokens))))
        }),
        extra_roots: match &args.upstream_ca_file {
            Some(path) => problems
                .take(
                    "--upstream-ca-file / KGEN_UPSTREAM_CA_FILE",
                    read_ca_file(path),
                )
                .unwrap_or_default(),
            None => Vec::new(),
        },
        ..Loaded::default()
    };
    credentials(args, secret_env, problems, &mut loaded);
    loaded.tenants = match (&args.tenants_file, url) {
        (Some(path), Some(url)) => {
            let config = problems.take(
                TENANTS,
                TenantsConfig::load(path, url, &|variable| std::env::var(variable).ok()),
            );
            config.and_then(|config| {
                let checked = config
                    .check_against_flags(args.sandbox || !loaded.client_id.is_empty())
                    .map_err(|p| format!("{}: {p}", path.display()));
                problems
                    .take(TENANTS, checked)
                    .map(|()| (path.clone(), config))
            })
        }
        // Its upstream_url fallback is unusable: the URL's own problem is reported.
        (Some(_), None) | (None, _) => None,
    };
    loaded
}

/// The flags' tenant's credentials: none in sandbox mode (those given are only named in the start-up warning),
/// none when every tenant comes from the tenants file, else the client id and the secret from its file or
/// `KGEN_CLIENT_SECRET`.
fn credentials(
    args: &GatewayArgs,
    secret_env: Option<String>,
    problems: &mut Problems,
    loaded: &mut Loaded,
) {
    if args.sandbox {
        for (given, setting) in [
            (args.client_id.is_some(), ID),
            (
                args.client_secret_file.is_some(),
                "--client-secret-file / KGEN_CLIENT_SECRET_FILE",
            ),
            (secret_env.is_some(), CLIENT_SECRET_ENV),
            (
                args.upstream_url.trim_end_matches('/') != DEFAULT_UPSTREAM_URL,
                "--upstream-url / KGEN_UPSTREAM_URL",
            ),
            (
                args.tenants_file.is_some(),
                "--tenants-file tenants' upstream_url, client_id and secrets",
            ),
        ] {
            if given {
                loaded.sandbox_ignores.push(setting);
            }
        }
        return;
    }
    let tenants_only = args.tenants_file.is_some()
        && args.client_id.is_none()
        && args.client_secret_file.is_none();
    if tenants_only {
        return;
    }
    loaded.client_id = match &args.client_id {
        Some(id) => problems
            .take(ID, check_header_value(id))
            .map_or_else(String::new, |()| id.clone()),
        None => {
            problems.add(
                ID,
                "missing (required unless --sandbox, or --tenants-file names the tenants)",
            );
            String::new()
        }
    };
    let secret = match (&args.client_secret_file, secret_env) {
        (Some(path), _) => {
            loaded.secret_file = Some(path.clone());
            problems.take(SECRET, read_secret_file(path))
        }
        (None, Some(secret)) => Some(secret.trim().to_owned()),
        (None, None) => {
            problems.add(
                SECRET,
                "missing (required unless --sandbox, or --tenants-file names the tenants)",
            );
            None
        }
    };
    loaded.client_secret = secret
        .and_then(|secret| {
            problems
                .take(SECRET, check_header_value(&secret))
                .map(|()| secret)
        })
        .unwrap_or_default();
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    Ok(raw.trim().to_owned())
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| format!("{} is not a PEM certificate bundle", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certificates)
}

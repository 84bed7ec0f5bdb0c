//! Multi-tenant credentials: one gateway in front of several games' KGeN client credentials.
//!
//! A tenants file (`--tenants-file`, TOML) lists one table per tenant:
//!
//! ```toml
//! default_tenant = "callbreak"          # optional
//!
//! [tenants.callbreak]
//! client_id = "cb-client"
//! client_secret_file = "secrets/callbreak"   # relative to the tenants file; or:
//! # client_secret_env = "CALLBREAK_SECRET"   # the name of an environment variable
//! upstream_url = "https://platform-protocols.kgen.io"   # optional, else --upstream-url
//! retry_on = "connect-failure,refused-stream,408,429,503"   # optional, else --retry-on
//! ```
//!
//! The single-tenant flags (`--client-id` with its secret), when given, are the tenant [`FLAG_TENANT`], the
//! default unless the file names another. A caller picks its tenant with the `x-kgen-tenant` metadata key; with
//! caller authentication its token also says which tenants it may use ([`TenantGrant`]).
//!
//! Each [`Tenant`] owns its upstream client (its own connection pool and credentials) and its own
//! [`Resilience`] (concurrency limit, retry budget, circuit breaker), so one game's failing credentials, rate
//! limit or slow upstream cannot starve another. The file is re-read every [`crate::support::watcher::RELOAD_INTERVAL`]
//! (secret files it names too); tenants whose settings did not change keep their client and breaker, a changed
//! secret is rotated in place, and a file that no longer parses is logged and ignored.
//!
//! In sandbox mode the tenants are [pinned](UpstreamPin): every tenant, the flags' and the file's, at start and on
//! every reload, is built to call the embedded sandbox with the sandbox's credentials, whatever its own
//! `upstream_url`, `client_id` and secret say.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use reqwest::Url;
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    error::Error,
    resilience::{BreakerState, Resilience, ResilienceSettings, RetryOn},
};
use crate::{
    observability::LabelName,
    support::{
        secrets::{expose, parse_secret},
        watcher::{self, Reloaded},
    },
    upstream::{parse_upstream_url, BuildError, UpstreamClient, UpstreamSettings},
};
/// The name of the tenant made of the single-tenant flags (`--client-id`, `--client-secret-file`, …).
pub const FLAG_TENANT: &str = "default";
/// Longest tenant name.
pub const MAX_TENANT_NAME: usize = 64;

/// A tenant name: 1–64 characters of ASCII letters, digits, `_`, `-` and `.`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TENANT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

// === the file ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    default_tenant: Option<String>,
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    client_id: String,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    upstream_url: Option<String>,
    retry_on: Option<String>,
}

/// One tenant's settings, resolved: its secret read, its upstream URL parsed.
#[derive(Clone)]
pub struct TenantSpec {
    /// The tenant's name (metrics and log label, `x-kgen-tenant` value).
    pub name: String,
    /// KGeN's base URL for this tenant.
    pub url: Url,
    /// The tenant's KGeN client id.
    pub client_id: String,
    /// The tenant's KGeN client secret (never printed).
    pub client_secret: SecretString,
    /// The tenant's retry policy, when it has its own (else `--retry-on`).
    pub retry_on: Option<RetryOn>,
}

impl fmt::Debug for TenantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSpec")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TenantSpec {
    fn secret_digest(&self) -> [u8; 32] {
        Sha256::digest(expose(&self.client_secret).as_bytes()).into()
    }
}

/// Where every tenant's calls go and with which credentials, whatever the flags and the tenants file say: the
/// embedded sandbox in sandbox mode, so that no call (and no real secret) ever leaves for another upstream.
#[derive(Clone)]
pub struct UpstreamPin {
    /// The only upstream base URL any tenant may call.
    pub url: Url,
    /// The client id every tenant sends.
    pub client_id: String,
    /// The client secret every tenant sends (never printed).
    pub client_secret: SecretString,
}

impl fmt::Debug for UpstreamPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamPin")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl UpstreamPin {
    /// `spec` with the pinned URL and credentials: only its name is kept.
    fn pin(&self, spec: &TenantSpec) -> TenantSpec {
        TenantSpec {
            name: spec.name.clone(),
            url: self.url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            retry_on: spec.retry_on.clone(),
        }
    }
}

/// A parsed and validated tenants file.
#[derive(Debug, Clone)]
pub struct TenantsConfig {
    /// The tenant used when a call names none (`default_tenant`).
    pub default_tenant: Option<String>,
    /// The tenants, in name order.
    pub tenants: Vec<TenantSpec>,
}

impl TenantsConfig {
    /// Reads and validates a tenants file. Relative `client_secret_file` paths are relative to the file's
    /// directory; `env` looks up `client_secret_env` variables. Errors are one line naming the problem (and the
    /// line of a TOML syntax error), never a secret.
    pub fn load(
        path: &Path,
        fallback_url: &Url,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, base, fallback_url, env)
            .map_err(|problem| format!("{}: {problem}", path.display()))
    }

    /// Parses and validates a tenants file's text (see [`TenantsConfig::load`]).
    pub fn parse(
        text: &str,
        base_dir: &Path,
        fallback_url: &Url,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1);
            let message = e.message().lines().collect::<Vec<_>>().join(" ");
            match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            }
        })?;
        if raw.tenants.is_empty() {
            return Err("lists no tenants (expected [tenants.<name>] tables)".to_owned());
        }
        let mut tenants = Vec::with_capacity(raw.tenants.len());
        for (name, tenant) in raw.tenants {
            tenants.push(resolve(name, tenant, base_dir, fallback_url, env)?);
        }
        if let Some(default) = &raw.default_tenant {
            if !is_valid_name(default) {
                return Err(format!("default_tenant {default:?} is not a tenant name"));
            }
        }
        Ok(Self {
            default_tenant: raw.default_tenant,
            tenants,
        })
    }

    /// Checks the file against the flags: the flag tenant's name is taken when the flags set credentials, and
    /// `default_tenant` must name a tenant of the file or the flag tenant.
    pub fn check_against_flags(&self, flag_tenant: bool) -> Result<(), String> {
        if flag_tenant && self.tenants.iter().any(|t| t.name == FLAG_TENANT) {
            return Err(format!(
                "tenant {FLAG_TENANT:?} is the --client-id flags' tenant; rename it or drop --client-id"
            ));
        }
        if let Some(default) = &self.default_tenant {
            let known = self.tenants.iter().any(|t| &t.name == default)
                || (flag_tenant && default == FLAG_TENANT);
            if !known {
                return Err(format!("default_tenant {default:?} is not a listed tenant"));
            }
        }
        Ok(())
    }
}

fn resolve(
    name: String,
    raw: RawTenant,
    base_dir: &Path,
    fallback_url: &Url,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TenantSpec, String> {
    let problem = |what: String| format!("tenant {name:?}: {what}");
    if !is_valid_name(&name) {
        return Err(format!(
            "tenant name {name:?} must be 1-{MAX_TENANT_NAME} ASCII letters, digits, '_', '-' or '.'"
        ));
    }
    let client_id = raw.client_id.trim().to_owned();
    if client_id.is_empty() || client_id.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(problem(
            "client_id must be non-empty printable ASCII".to_owned(),
        ));
    }
    let client_secret = match (raw.client_secret_file, raw.client_secret_env) {
        (Some(file), None) => {
            let path = if file.is_relative() {
                base_dir.join(file)
            } else {
                file
            };
            let content = std::fs::read(&path).map_err(|e| {
                problem(format!(
                    "client_secret_file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            parse_secret(&content)
                .map_err(|p| problem(format!("client_secret_file {}: {p}", path.display())))?
        }
        (None, Some(variable)) => {
            let value = env(&variable).ok_or_else(|| {
                problem(format!(
                    "client_secret_env: environment variable {variable} is not set"
                ))
            })?;
            parse_secret(value.as_bytes())
                .map_err(|p| problem(format!("client_secret_env {variable}: {p}")))?
        }
        _ => {
            return Err(problem(
                "set exactly one of client_secret_file and client_secret_env".to_owned(),
            ))
        }
    };
    let url = match raw.upstream_url {
        Some(raw) => parse_upstream_url(&raw).map_err(|p| problem(format!("upstream_url {p}")))?,
        None => fallback_url.clone(),
    };
    let retry_on = raw
        .retry_on
        .map(|text| RetryOn::parse(&text).map_err(|p| problem(format!("retry_on: {p}"))))
        .transpose()?;
    Ok(TenantSpec {
        name,
        url,
        client_id,
        client_secret,
        retry_on,
    })
}

// === impl TenantGrant ===

/// Which tenants an authenticated caller may use (from its line in the caller tokens file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantGrant {
    /// Only the default tenant (a `name:token` line without `tenants=`: least privilege).
    DefaultOnly,
    /// Every configured tenant (`tenants=*`).
    All,
    /// Exactly these tenants (`tenants=a,b`).
    Only(Arc<[String]>),
}

impl TenantGrant {
    /// Parses the value of `tenants=`: `*`, or comma-separated tenant names.
    pub fn parse(value: &str) -> Option<Self> {
        if value == "*" {
            return Some(Self::All);
        }
        let names: Vec<String> = value.split(',').map(str::to_owned).collect();
        names
            .iter()
            .all(|n| is_valid_name(n))
            .then(|| Self::Only(names.into()))
    }

    fn allows(&self, tenant: &str, default: Option<&str>) -> bool {
        match self {
            Self::DefaultOnly => default == Some(tenant),
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == tenant),
        }
    }
}

// === impl Tenant ===

/// One tenant at run time: its upstream client and its own limit, retry budget and breaker.
pub struct Tenant {
    name: LabelName,
    upstream: Arc<UpstreamClient>,
    resilience: Arc<Resilience>,
    url: Url,
    client_id: String,
    secret_digest: [u8; 32],
    retry_on: Option<RetryOn>,
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("name", &self.name)
            .field("upstream", &self.upstream)
            .field("resilience", &self.resilience)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    /// The only way a tenant is made: with a pin, `spec`'s URL and credentials are replaced by the pinned ones.
    fn build(
        spec: &TenantSpec,
        template: &UpstreamSettings,
        resilience: &ResilienceSettings,
        pin: Option<&UpstreamPin>,
    ) -> Result<Self, BuildError> {
        let pinned;
        let spec = match pin {
            Some(pin) => {
                pinned = pin.pin(spec);
                &pinned
            }
            None => spec,
        };
        let mut settings = template.clone();
        settings.url = spec.url.clone();
        settings.client_id = spec.client_id.clone();
        settings.client_secret = spec.client_secret.clone();
        settings.client_secret_file = None;
        let mut resilience = resilience.clone();
        if let Some(retry_on) = &spec.retry_on {
            resilience.retry_on = retry_on.clone();
        }
        Ok(Self {
            name: LabelName::from(spec.name.as_str()),
            upstream: Arc::new(UpstreamClient::new(&settings)?),
            resilience: Arc::new(Resilience::new(&resilience)),
            url: spec.url.clone(),
            client_id: spec.client_id.clone(),
            secret_digest: spec.secret_digest(),
            retry_on: spec.retry_on.clone(),
        })
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The tenant's name as a metric label value (shared, not copied per call).
    pub fn label(&self) -> &LabelName {
        &self.name
    }

    /// The tenant's KGeN client.
    pub fn upstream(&self) -> &Arc<UpstreamClient> {
        &self.upstream
    }

    /// The tenant's concurrency limit, retry budget and circuit breaker.
    pub fn resilience(&self) -> &Arc<Resilience> {
        &self.resilience
    }
}

// === impl Tenants ===

/// The tenants in force: swapped whole on reload, so a call uses one consistent set.
#[derive(Debug)]
struct Registry {
    by_name: HashMap<String, Arc<Tenant>>,
    default: Option<String>,
}

/// Every configured tenant, the default one, and what is needed to build new ones on reload.
pub struct Tenants {
    current: ArcSwap<Registry>,
    /// The flags' tenant, which reloads of the file never remove.
    flag: Option<Arc<Tenant>>,
    template: UpstreamSettings,
    resilience: ResilienceSettings,
    /// In sandbox mode: the upstream and credentials of every tenant, whatever the flags and the file say.
    pin: Option<UpstreamPin>,
}

impl fmt::Debug for Tenants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.load();
        let mut names: Vec<&str> = current.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Tenants")
            .field("tenants", &names)
            .field("default", &current.default)
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

impl Tenants {
    /// The tenants for a log line people read: `"alpha (default), bold"`, names sorted, the default marked, and
    /// `; pinned to the sandbox` in sandbox mode.
    pub fn summary(&self) -> String {
        let current = self.current.load();
        let mut names: Vec<&str> = current.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut summary = names
            .iter()
            .map(|name| {
                if current.default.as_deref() == Some(*name) {
                    format!("{name} (default)")
                } else {
                    (*name).to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        if summary.is_empty() {
            summary.push_str("none");
        }
        if self.pin.is_some() {
            summary.push_str("; pinned to the sandbox");
        }
        summary
    }
}

/// What a reload changed, for its log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Tenants new in the file.
    pub added: Vec<String>,
    /// Tenants no longer in the file.
    pub removed: Vec<String>,
    /// Tenants whose URL or client id changed (rebuilt with a fresh client and breaker).
    pub rebuilt: Vec<String>,
    /// Tenants whose secret rotated (same client and breaker).
    pub rotated: Vec<String>,
    /// Whether the default tenant changed.
    pub default_changed: bool,
}

impl Changes {
    fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

impl Tenants {
    /// The flags' tenant (when `flags` carries credentials, i.e. a non-empty client id) and the file's tenants.
    pub fn new(
        flags: &UpstreamSettings,
        resilience: &ResilienceSettings,
        file: Option<&TenantsConfig>,
    ) -> Result<Self, BuildError> {
        Self::build(flags, resilience, file, None)
    }

    /// Like [`Tenants::new`], but every tenant, now and after every reload, calls `pin.url` with `pin`'s
    /// credentials: the URLs and credentials of the flags and the file are not used (their tenant names, the
    /// default tenant and caller grants are). The flags' tenant always exists.
    pub fn pinned(
        flags: &UpstreamSettings,
        resilience: &ResilienceSettings,
        file: Option<&TenantsConfig>,
        pin: UpstreamPin,
    ) -> Result<Self, BuildError> {
        Self::build(flags, resilience, file, Some(pin))
    }

    fn build(
        flags: &UpstreamSettings,
        resilience: &ResilienceSettings,
        file: Option<&TenantsConfig>,
        pin: Option<UpstreamPin>,
    ) -> Result<Self, BuildError> {
        let mut template = flags.clone();
        if let Some(pin) = &pin {
            // Also the fallback URL of reloads: nothing of the flags' upstream is kept.
            template.url = pin.url.clone();
            template.client_id = pin.client_id.clone();
            template.client_secret = pin.client_secret.clone();
            template.client_secret_file = None;
        }
        let flag = if flags.client_id.is_empty() && pin.is_none() {
            None
        } else {
            let spec = TenantSpec {
                name: FLAG_TENANT.to_owned(),
                url: flags.url.clone(),
                client_id: flags.client_id.clone(),
                client_secret: flags.client_secret.clone(),
                retry_on: None,
            };
            Some(Arc::new(Tenant::build(
                &spec,
                &template,
                resilience,
                pin.as_ref(),
            )?))
        };
        let tenants = Self {
            current: ArcSwap::from_pointee(Registry {
                by_name: HashMap::new(),
                default: None,
            }),
            flag,
            template,
            resilience: resilience.clone(),
            pin,
        };
        let empty = TenantsConfig {
            default_tenant: None,
            tenants: Vec::new(),
        };
        tenants.apply(file.unwrap_or(&empty).clone())?;
        Ok(tenants)
    }

    /// The flags' tenant, whose secret file is watched on its own.
    pub fn flag_tenant(&self) -> Option<&Arc<Tenant>> {
        self.flag.as_ref()
    }

    /// `spec` as it is built: pinned, in sandbox mode.
    fn effective<'a>(&self, spec: &'a TenantSpec) -> std::borrow::Cow<'a, TenantSpec> {
        match &self.pin {
            Some(pin) => std::borrow::Cow::Owned(pin.pin(spec)),
            None => std::borrow::Cow::Borrowed(spec),
        }
    }

    /// A fresh tenant (client, limit, breaker) for `spec`, built as every tenant of this set is.
    fn build_tenant(&self, spec: &TenantSpec) -> Result<Arc<Tenant>, BuildError> {
        Tenant::build(spec, &self.template, &self.resilience, self.pin.as_ref()).map(Arc::new)
    }

    /// Swaps in the tenants of `config`: unchanged tenants keep their client and breaker; a changed secret is
    /// rotated in place; a changed URL or client id gets a new tenant. The flags' tenant stays. With a pin, every
    /// tenant is compared and built pinned (its URL and credentials in `config` are not used).
    pub fn apply(&self, config: TenantsConfig) -> Result<Changes, BuildError> {
        let old = self.current.load_full();
        let mut changes = Changes::default();
        let mut by_name = HashMap::with_capacity(config.tenants.len() + 1);
        if let Some(flag) = &self.flag {
            by_name.insert(FLAG_TENANT.to_owned(), flag.clone());
        }
        for spec in &config.tenants {
            let spec = self.effective(spec);
            let spec = spec.as_ref();
            let tenant = match old.by_name.get(&spec.name) {
                Some(existing)
                    if existing.url == spec.url
                        && existing.client_id == spec.client_id
                        && existing.retry_on == spec.retry_on =>
                {
                    if existing.secret_digest == spec.secret_digest() {
                        existing.clone()
                    } else {
                        existing
                            .upstream
                            .rotate_secret(spec.client_secret.clone())?;
                        // A new `Tenant` value sharing the client and breaker, with the new digest.
                        changes.rotated.push(spec.name.clone());
                        Arc::new(Tenant {
                            name: existing.name.clone(),
                            upstream: existing.upstream.clone(),
                            resilience: existing.resilience.clone(),
                            url: existing.url.clone(),
                            client_id: existing.client_id.clone(),
                            secret_digest: spec.secret_digest(),
                            retry_on: existing.retry_on.clone(),
                        })
                    }
                }
                Some(_) => {
                    changes.rebuilt.push(spec.name.clone());
                    self.build_tenant(spec)?
                }
                None => {
                    changes.added.push(spec.name.clone());
                    self.build_tenant(spec)?
                }
            };
            by_name.insert(spec.name.clone(), tenant);
        }
        changes.removed = old
            .by_name
            .keys()
            .filter(|name| !by_name.contains_key(*name))
            .cloned()
            .collect();
        let default = config
            .default_tenant
            .or_else(|| self.flag.as_ref().map(|_| FLAG_TENANT.to_owned()));
        changes.default_changed = default != old.default && !old.by_name.is_empty();
        self.current.store(Arc::new(Registry { by_name, default }));
        Ok(changes)
    }

    /// Picks the tenant of a call: the `x-kgen-tenant` value when present, else the caller's only granted tenant,
    /// else the default. `grant` is the authenticated caller's (none without caller authentication: every tenant
    /// may be named).
    pub fn select(
        &self,
        requested: Option<&str>,
        grant: Option<&TenantGrant>,
    ) -> Result<Arc<Tenant>, Error> {
        let current = self.current.load();
        let default = current.default.as_deref();
        let not_allowed = |name: &str| Error::TenantNotAllowed {
            tenant: is_valid_name(name).then(|| name.to_owned()),
        };
        let name = match (requested, grant) {
            (Some(name), _) => name,
            (None, Some(TenantGrant::Only(names))) if names.len() == 1 => names[0].as_str(),
            (None, _) => default.ok_or(Error::TenantRequired)?,
        };
        if grant.is_some_and(|g| !g.allows(name, default)) {
            // A restricted caller with no header whose grant excludes the default must name a tenant.
            return Err(if requested.is_none() {
                Error::TenantRequired
            } else {
                not_allowed(name)
            });
        }
        current
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| not_allowed(name))
    }

    /// Whether `name` is a configured tenant (metrics record only those).
    pub fn contains(&self, name: &str) -> bool {
        self.current.load().by_name.contains_key(name)
    }

    /// Every tenant's name, upstream calls in flight and breaker state, in name order (read at scrape time).
    pub fn gauges(&self) -> Vec<(String, usize, BreakerState)> {
        let current = self.current.load();
        let mut gauges: Vec<_> = current
            .by_name
            .values()
            .map(|t| {
                (
                    t.name().to_owned(),
                    t.resilience.in_flight(),
                    t.resilience.breaker.state(),
                )
            })
            .collect();
        gauges.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        gauges
    }

    /// The default tenant's name.
    #[cfg(test)]
    pub fn default_name(&self) -> Option<String> {
        self.current.load().default.clone()
    }

    /// Whether the file may hold `default` as a tenant name (no flags' tenant).
    pub fn has_flag_tenant(&self) -> bool {
        self.flag.is_some()
    }
}

/// Re-reads the tenants file (and the secret files it names) with the one file watcher until `stop` is cancelled;
/// a new valid set replaces the old for new calls, an invalid one is logged once and ignored.
pub fn watch(
    tenants: Arc<Tenants>,
    path: PathBuf,
    interval: Duration,
    report: watcher::ReloadReport,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let template_url = tenants.template.url.clone();
    let flag = tenants.has_flag_tenant();
    watcher::watch(
        "--tenants-file",
        path,
        interval,
        move |path| {
            let config = TenantsConfig::load(path, &template_url, &|variable| {
                std::env::var(variable).ok()
            })?;
            config.check_against_flags(flag)?;
            Ok(config)
        },
        move |config| {
            if unchanged(&tenants, &config) {
                return Ok(Reloaded::Unchanged);
            }
            let changes = tenants.apply(config).map_err(|e| e.to_string())?;
            Ok(if changes.is_empty() {
                Reloaded::Unchanged
            } else {
                Reloaded::Changed(format!("{changes:?}"))
            })
        },
        report,
        stop,
    )
}

/// Whether `config` describes exactly the tenants in force (so nothing needs swapping).
fn unchanged(tenants: &Tenants, config: &TenantsConfig) -> bool {
    let current = tenants.current.load();
    let flag = usize::from(tenants.flag.is_some());
    let default = config
        .default_tenant
        .clone()
        .or_else(|| tenants.flag.as_ref().map(|_| FLAG_TENANT.to_owned()));
    current.default == default
        && current.by_name.len() == config.tenants.len() + flag
        && config.tenants.iter().all(|spec| {
            let spec = tenants.effective(spec);
            current.by_name.get(&spec.name).is_some_and(|t| {
                t.url == spec.url
                    && t.client_id == spec.client_id
                    && t.secret_digest == spec.secret_digest()
                    && t.retry_on == spec.retry_on
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://stage.example").unwrap()
    }

    fn env(name: &str) -> Option<String> {
        (name == "CB_SECRET").then(|| "cb-env-secret\n".to_owned())
    }

    fn parse(text: &str) -> Result<TenantsConfig, String> {
        TenantsConfig::parse(text, Path::new("/nonexistent"), &url(), &env)
    }

    const TWO: &str = r#"
default_tenant = "callbreak"

[tenants.callbreak]
client_id = "cb"
client_secret_env = "CB_SECRET"

[tenants.ludo-2]
client_id = "ludo"
client_secret_env = "CB_SECRET"
upstream_url = "https://prod.example/base"
"#;

    #[test]
    fn a_valid_file_resolves_secrets_urls_and_the_default() {
        let config = parse(TWO).unwrap();
        assert_eq!(config.default_tenant.as_deref(), Some("callbreak"));
        let names: Vec<_> = config.tenants.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["callbreak", "ludo-2"]);
        assert_eq!(expose(&config.tenants[0].client_secret), "cb-env-secret");
        assert_eq!(config.tenants[0].url, url(), "falls back to --upstream-url");
        assert_eq!(config.tenants[1].url.as_str(), "https://prod.example/base");
        assert!(!format!("{config:?}").contains("cb-env-secret"));
        config.check_against_flags(true).unwrap();
    }

    #[test]
    fn secret_files_are_read_relative_to_the_tenants_file() {
        let dir = std::env::temp_dir().join(format!("kgen-tenants-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cb.secret"), "file-secret\n").unwrap();
        let path = dir.join("tenants.toml");
        std::fs::write(
            &path,
            "[tenants.cb]\nclient_id = \"cb\"\nclient_secret_file = \"cb.secret\"\n",
        )
        .unwrap();
        let config = TenantsConfig::load(&path, &url(), &env);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            expose(&config.unwrap().tenants[0].client_secret),
            "file-secret"
        );
    }

    #[test]
    fn bad_files_are_rejected_with_one_line_and_no_secret() {
        for (text, needle) in [
            ("[tenants.a]\nclient_id = \"a\"\n", "exactly one of"),
            (
                "[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\nclient_secret_file = \"x\"\n",
                "exactly one of",
            ),
            ("[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"NOPE\"\n", "NOPE is not set"),
            ("[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\ncolour = 1\n", "line 4"),
            ("[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\nupstream_url = \"ftp://x\"\n", "upstream_url"),
            ("[tenants.\"bad name\"]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\n", "tenant name"),
            ("[tenants.a]\nclient_id = \"\"\nclient_secret_env = \"CB_SECRET\"\n", "client_id"),
            ("[tenants.a]\nclient_id = \"a\"\nclient_secret_file = \"/nonexistent/s\"\n", "cannot read /nonexistent/s"),
            ("default_tenant = \"a\"\n", "no tenants"),
            ("[tenants.a\nclient_id = \"a\"\n", "line 1"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(!err.contains("cb-env-secret"), "{err}");
        }
    }

    #[test]
    fn the_default_must_be_a_listed_tenant_and_default_is_reserved_for_the_flags() {
        let unknown = parse(
            "default_tenant = \"zz\"\n[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\n",
        )
        .unwrap();
        assert!(unknown.check_against_flags(true).is_err());
        let flag_default = parse(
            "default_tenant = \"default\"\n[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\n",
        )
        .unwrap();
        assert!(flag_default.check_against_flags(true).is_ok());
        assert!(flag_default.check_against_flags(false).is_err());
        let clash =
            parse("[tenants.default]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\n")
                .unwrap();
        assert!(clash.check_against_flags(true).is_err());
        assert!(clash.check_against_flags(false).is_ok());
    }

    #[test]
    fn grants_parse_star_and_lists_of_names() {
        assert_eq!(TenantGrant::parse("*"), Some(TenantGrant::All));
        assert_eq!(
            TenantGrant::parse("a,b-2"),
            Some(TenantGrant::Only(
                vec!["a".to_owned(), "b-2".to_owned()].into()
            ))
        );
        for bad in ["", "a,,b", "a b", "a,*"] {
            assert_eq!(TenantGrant::parse(bad), None, "{bad:?}");
        }
    }

    fn registry() -> Tenants {
        let flags = UpstreamSettings::new(url(), "flag-id", "flag-secret");
        let file = parse(TWO).unwrap();
        Tenants::new(&flags, &ResilienceSettings::default(), Some(&file)).unwrap()
    }

    #[tokio::test]
    async fn the_start_up_summary_names_the_tenants_and_marks_the_default() {
        let summary = registry().summary();
        assert_eq!(summary, "callbreak (default), default, ludo-2");
        assert!(!summary.contains("Tenants {"), "{summary}");
    }

    #[tokio::test]
    async fn selection_follows_the_header_the_grant_and_the_default() {
        let tenants = registry();
        let pick = |requested, grant| {
            tenants
                .select(requested, grant)
                .map(|t| t.name().to_owned())
        };
        assert_eq!(pick(None, None).unwrap(), "callbreak");
        assert_eq!(pick(Some("ludo-2"), None).unwrap(), "ludo-2");
        assert_eq!(pick(Some("default"), None).unwrap(), "default");
        assert!(matches!(
            pick(Some("nope"), None),
            Err(Error::TenantNotAllowed { tenant: Some(t) }) if t == "nope"
        ));
        assert!(matches!(
            pick(Some("bad value!"), None),
            Err(Error::TenantNotAllowed { tenant: None })
        ));
        let only_ludo = TenantGrant::Only(vec!["ludo-2".to_owned()].into());
        assert_eq!(pick(None, Some(&only_ludo)).unwrap(), "ludo-2");
        assert!(matches!(
            pick(Some("callbreak"), Some(&only_ludo)),
            Err(Error::TenantNotAllowed { .. })
        ));
        assert_eq!(
            pick(None, Some(&TenantGrant::DefaultOnly)).unwrap(),
            "callbreak"
        );
        assert!(matches!(
            pick(Some("ludo-2"), Some(&TenantGrant::DefaultOnly)),
            Err(Error::TenantNotAllowed { .. })
        ));
        let two = TenantGrant::Only(vec!["ludo-2".to_owned(), "default".to_owned()].into());
        assert!(matches!(pick(None, Some(&two)), Err(Error::TenantRequired)));
        assert_eq!(
            pick(Some("ludo-2"), Some(&TenantGrant::All)).unwrap(),
            "ludo-2"
        );

        let no_default = Tenants::new(
            &UpstreamSettings::new(url(), "", ""),
            &ResilienceSettings::default(),
            Some(
                &parse("[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"CB_SECRET\"\n")
                    .unwrap(),
            ),
        )
        .unwrap();
        assert!(matches!(
            no_default.select(None, None),
            Err(Error::TenantRequired)
        ));
        assert!(no_default.select(Some("a"), None).is_ok());
    }

    fn sandbox_pin() -> UpstreamPin {
        UpstreamPin {
            url: Url::parse("http://127.0.0.1:9/").unwrap(),
            client_id: "sandbox-client".to_owned(),
            client_secret: SecretString::from("sandbox-secret".to_owned()),
        }
    }

    /// Asserts every tenant in force calls the pin's URL with the pin's credentials.
    #[track_caller]
    fn assert_all_pinned(tenants: &Tenants, names: &[&str]) {
        let pin = sandbox_pin();
        let pinned_endpoint = Url::parse("http://127.0.0.1:9/s2s/session/").unwrap();
        let pinned_digest: [u8; 32] = Sha256::digest(b"sandbox-secret").into();
        let current = tenants.current.load();
        let mut in_force: Vec<&str> = current.by_name.keys().map(String::as_str).collect();
        in_force.sort_unstable();
        assert_eq!(in_force, names);
        for tenant in current.by_name.values() {
            assert_eq!(tenant.url, pin.url, "{}", tenant.name());
            assert_eq!(
                tenant.upstream.endpoint(),
                &pinned_endpoint,
                "{}",
                tenant.name()
            );
            assert_eq!(tenant.client_id, pin.client_id, "{}", tenant.name());
            assert_eq!(tenant.secret_digest, pinned_digest, "{}", tenant.name());
        }
    }

    #[tokio::test]
    async fn a_pin_holds_every_tenant_to_the_sandbox_at_start_and_across_reloads() {
        // The flags carry real credentials and a real URL; the file's tenants their own URLs and secrets.
        let flags = UpstreamSettings::new(
            Url::parse("https://platform.example").unwrap(),
            "flag-id",
            "flag-secret",
        );
        let tenants = Tenants::pinned(
            &flags,
            &ResilienceSettings::default(),
            Some(&parse(TWO).unwrap()),
            sandbox_pin(),
        )
        .unwrap();
        assert_all_pinned(&tenants, &["callbreak", "default", "ludo-2"]);
        assert_eq!(tenants.default_name().as_deref(), Some("callbreak"));
        let callbreak = tenants.select(Some("callbreak"), None).unwrap();

        // A reload that changes a URL, a client id and a secret, and adds a tenant with its own URL.
        let mut config = parse(TWO).unwrap();
        config.tenants[0].client_secret = SecretString::from("rotated".to_owned());
        config.tenants[0].client_id = "cb-2".to_owned();
        config.tenants[1].url = Url::parse("https://other.example").unwrap();
        config.tenants.push(TenantSpec {
            name: "new".to_owned(),
            url: Url::parse("https://new.example").unwrap(),
            client_id: "n".to_owned(),
            client_secret: SecretString::from("n-secret".to_owned()),
            retry_on: None,
        });
        let changes = tenants.apply(config).unwrap();
        assert_all_pinned(&tenants, &["callbreak", "default", "ludo-2", "new"]);
        assert_eq!(changes.added, ["new"]);
        assert!(
            changes.rebuilt.is_empty() && changes.rotated.is_empty(),
            "pinned tenants do not change: {changes:?}"
        );
        let after = tenants.select(Some("callbreak"), None).unwrap();
        assert!(Arc::ptr_eq(&callbreak.upstream, &after.upstream));
        assert!(
            tenants.template.url == sandbox_pin().url,
            "reloads fall back to the pin"
        );

        // A file that would be a change without the pin is, with it, no change at all.
        let mut config = parse(TWO).unwrap();
        config.tenants[1].url = Url::parse("https://elsewhere.example").unwrap();
        config.tenants.push(TenantSpec {
            name: "new".to_owned(),
            url: url(),
            client_id: "other".to_owned(),
            client_secret: SecretString::from("other".to_owned()),
            retry_on: None,
        });
        assert!(unchanged(&tenants, &config));
        assert!(!format!("{tenants:?}").contains("sandbox-secret"));
    }

    #[tokio::test]
    async fn a_pin_makes_the_flags_tenant_even_without_flag_credentials() {
        let tenants = Tenants::pinned(
            &UpstreamSettings::new(url(), "", ""),
            &ResilienceSettings::default(),
            None,
            sandbox_pin(),
        )
        .unwrap();
        assert_all_pinned(&tenants, &["default"]);
        assert_eq!(tenants.default_name().as_deref(), Some("default"));
    }

    #[tokio::test]
    async fn reloads_keep_unchanged_tenants_and_rotate_secrets_in_place() {
        let tenants = registry();
        let before = tenants.select(Some("callbreak"), None).unwrap();
        let ludo_before = tenants.select(Some("ludo-2"), None).unwrap();

        let mut config = parse(TWO).unwrap();
        assert!(unchanged(&tenants, &config));
        config.tenants[0].client_secret = SecretString::from("rotated".to_owned());
        config.tenants[1].url = Url::parse("https://other.example").unwrap();
        config.tenants.push(TenantSpec {
            name: "new".to_owned(),
            url: url(),
            client_id: "n".to_owned(),
            client_secret: SecretString::from("n".to_owned()),
            retry_on: None,
        });
        assert!(!unchanged(&tenants, &config));
        let changes = tenants.apply(config).unwrap();
        assert_eq!(changes.rotated, ["callbreak"]);
        assert_eq!(changes.rebuilt, ["ludo-2"]);
        assert_eq!(changes.added, ["new"]);

        let after = tenants.select(Some("callbreak"), None).unwrap();
        assert!(
            Arc::ptr_eq(&before.resilience, &after.resilience),
            "breaker kept"
        );
        assert!(
            Arc::ptr_eq(&before.upstream, &after.upstream),
            "client kept"
        );
        let ludo_after = tenants.select(Some("ludo-2"), None).unwrap();
        assert!(!Arc::ptr_eq(&ludo_before.upstream, &ludo_after.upstream));
        assert!(tenants.contains("new") && tenants.contains("default"));
        assert!(!format!("{tenants:?} {after:?}").contains("rotated"));
    }
}

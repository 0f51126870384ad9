//! The config file (TOML), its environment overrides and its validation.
//!
//! The names are the contract of `DESIGN.md` ("Command-line and config
//! contract"): sections `api`, `sip`, `media`, `database`, `bindings` and the
//! array `accounts`. Every scalar or array key of a section can be overridden
//! by an environment variable `MEDIATOR_<SECTION>_<KEY>` (for example
//! `MEDIATOR_DATABASE_URL`, `MEDIATOR_SIP_ADVERTISED_HOST`). An override's
//! value is read as a TOML value when it parses as one (`5`, `true`,
//! `["a", "b"]`) and as a plain string otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::model::phone::PhoneNumber;

/// Why a config could not be used. Every variant names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named on the command line.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key has the wrong type or is unknown.
    #[error("invalid config {origin}: {message}")]
    Syntax {
        /// The file or "environment".
        origin: String,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A key parsed but its value cannot be used.
    #[error("invalid config key `{key}`: {problem}")]
    Invalid {
        /// The dotted key, for example `sip.trusted[1]`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[api]`: the REST listener.
    #[serde(default)]
    pub api: ApiConfig,
    /// `[sip]`: SIP listeners, trunk and admission.
    #[serde(default)]
    pub sip: SipConfig,
    /// `[media]`: RTP addresses, ports and audio sources.
    #[serde(default)]
    pub media: MediaConfig,
    /// `[database]`: the store.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// `[bindings]`: binding housekeeping.
    #[serde(default)]
    pub bindings: BindingsConfig,
    /// `[callbacks]`: delivery of call detail records to accounts'
    /// callback URLs.
    #[serde(default)]
    pub callbacks: CallbacksConfig,
    /// `[dialouts]`: the dialout scheduler.
    #[serde(default)]
    pub dialouts: DialoutsConfig,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[log]`: log format and masking.
    #[serde(default)]
    pub log: LogConfig,
    /// `[[accounts]]`: accounts seeded (created or updated) at start.
    #[serde(default)]
    pub accounts: Vec<AccountSeed>,
}

/// `[callbacks]` section: how call detail records are delivered (see
/// `docs/operations.md`, "Callbacks").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    /// How long a record is retried after it was written, in seconds; then
    /// it is given up (kept in the outbox with `failed_at`).
    #[serde(default = "default_retry_for_secs")]
    pub retry_for_secs: u64,
    /// Wait before the first retry, in milliseconds; it doubles with each
    /// failed attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The longest wait between two attempts, in seconds.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// Time limit of one POST (connect, send, answer), in seconds.
    #[serde(default = "default_callback_timeout_secs")]
    pub timeout_secs: u64,
    /// How often the outbox is polled for due retries (and for records
    /// written by other nodes), in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Most deliveries in flight at once per node.
    #[serde(default = "default_callback_concurrency")]
    pub concurrency: u32,
}

fn default_retry_for_secs() -> u64 {
    86_400
}
fn default_initial_backoff_ms() -> u64 {
    1000
}
fn default_max_backoff_secs() -> u64 {
    300
}
fn default_callback_timeout_secs() -> u64 {
    10
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_callback_concurrency() -> u32 {
    16
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            retry_for_secs: default_retry_for_secs(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_secs: default_max_backoff_secs(),
            timeout_secs: default_callback_timeout_secs(),
            poll_ms: default_poll_ms(),
            concurrency: default_callback_concurrency(),
        }
    }
}

/// `[dialouts]` section: the scheduler that starts dialouts when they are
/// due (see `docs/dialouts.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialoutsConfig {
    /// Whether this node starts dialouts; `false`: it serves the API (and
    /// calls) but leaves dialouts to other nodes on the same database.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the store is polled for due dialouts (those of other
    /// nodes, and as a safety net for this node's own), in milliseconds.
    /// Dialouts created or changed through this node's API wake the
    /// scheduler at once, and a sleeping scheduler wakes when the next
    /// dialout it knows of is due.
    #[serde(default = "default_dialout_poll_ms")]
    pub poll_ms: u64,
    /// A due dialout claimed more than this many seconds after its time
    /// (the server was down) is not placed: it is recorded with outcome
    /// `missed` and removed.
    #[serde(default = "default_max_lateness_secs")]
    pub max_lateness_secs: u64,
    /// A dialout claimed (state `started`) this many seconds ago whose call
    /// never reported an end (its node died) is recorded with outcome
    /// `cancelled` and removed; it is never placed again.
    #[serde(default = "default_stale_started_secs")]
    pub stale_started_secs: u64,
    /// Most dialouts claimed in one statement.
    #[serde(default = "default_dialout_batch")]
    pub batch: u32,
    /// This node's name in `dialouts.claimed_by`; empty: `<hostname>-<pid>`.
    #[serde(default)]
    pub node_id: String,
}

fn default_true() -> bool {
    true
}
fn default_dialout_poll_ms() -> u64 {
    1000
}
fn default_max_lateness_secs() -> u64 {
    300
}
fn default_stale_started_secs() -> u64 {
    86_400
}
fn default_dialout_batch() -> u32 {
    200
}

impl Default for DialoutsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_ms: default_dialout_poll_ms(),
            max_lateness_secs: default_max_lateness_secs(),
            stale_started_secs: default_stale_started_secs(),
            batch: default_dialout_batch(),
            node_id: String::new(),
        }
    }
}

/// `[metrics]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A separate listener for `/metrics`, `/healthz` and `/readyz`,
    /// `IP:PORT`; empty: they are served on the API listener only.
    #[serde(default)]
    pub listen: String,
}

/// `[log]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human-readable, the default) or `json` (one object a line);
    /// `--log-format` overrides it.
    #[serde(default)]
    pub format: String,
    /// Mask phone numbers in log lines (`+1555***4567`): every run of 7 to
    /// 15 digits keeps its first and last digits only.
    #[serde(default)]
    pub mask_numbers: bool,
}

/// `[api]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the REST API listens on, `IP:PORT`.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// Base URL written into pagination links; empty: taken from the
    /// request's `Host` header as `http://HOST`.
    #[serde(default)]
    pub public_url: String,
    /// How long a verified credential stays cached, in seconds.
    #[serde(default = "default_auth_cache_secs")]
    pub auth_cache_secs: u64,
}

fn default_api_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_auth_cache_secs() -> u64 {
    60
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            public_url: String::new(),
            auth_cache_secs: default_auth_cache_secs(),
        }
    }
}

/// `[sip]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// Listeners as `udp:IP:PORT` or `tcp:IP:PORT`.
    #[serde(default = "default_sip_listen")]
    pub listen: Vec<String>,
    /// Host written into Via and Contact.
    #[serde(default = "default_localhost")]
    pub advertised_host: String,
    /// SIP URI every outbound leg is sent to.
    #[serde(default = "default_trunk")]
    pub trunk: String,
    /// Networks (CIDR) allowed to send INVITEs; others get 403.
    #[serde(default = "default_trusted")]
    pub trusted: Vec<String>,
    /// How long a B leg may ring before the call fails, in seconds.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// After SIGTERM, how long established calls may go on, in seconds.
    #[serde(default = "default_drain")]
    pub drain_secs: u64,
    /// RFC 4028 session interval we ask for and offer, in seconds (at least
    /// `min_se_secs`).
    #[serde(default = "default_session_expires")]
    pub session_expires_secs: u32,
    /// RFC 4028 Min-SE: the shortest session interval we accept, in seconds
    /// (at least 90, RFC 4028 §5).
    #[serde(default = "default_min_se")]
    pub min_se_secs: u32,
    /// How many 3xx responses from the trunk one call follows (RFC 3261
    /// §8.1.3.4); 0: none (the caller gets a failure, never the 3xx).
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// How long a dialout waits for stage one's confirming digit after the
    /// `use_call_confirmation` prompt has played, in seconds (the prompt
    /// plays at most twice).
    #[serde(default = "default_confirm_timeout")]
    pub confirm_timeout_secs: u64,
    /// Digest username for the trunk's 401/407 challenges (RFC 3261 §22);
    /// empty: not answered.
    #[serde(default)]
    pub trunk_username: String,
    /// Digest password for the trunk (set together with `trunk_username`);
    /// printed as `***`.
    #[serde(default)]
    pub trunk_password: crate::sip::config::Secret,
}

fn default_max_redirects() -> u32 {
    3
}

fn default_session_expires() -> u32 {
    1800
}
fn default_min_se() -> u32 {
    90
}

fn default_ring_timeout() -> u64 {
    60
}
fn default_confirm_timeout() -> u64 {
    8
}
fn default_drain() -> u64 {
    30
}

fn default_sip_listen() -> Vec<String> {
    vec!["udp:0.0.0.0:5060".into(), "tcp:0.0.0.0:5060".into()]
}
fn default_localhost() -> String {
    "127.0.0.1".into()
}
fn default_trunk() -> String {
    "sip:127.0.0.1:5080".into()
}
fn default_trusted() -> Vec<String> {
    vec!["127.0.0.0/8".into()]
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: default_sip_listen(),
            advertised_host: default_localhost(),
            trunk: default_trunk(),
            trusted: default_trusted(),
            ring_timeout_secs: default_ring_timeout(),
            drain_secs: default_drain(),
            session_expires_secs: default_session_expires(),
            min_se_secs: default_min_se(),
            max_redirects: default_max_redirects(),
            confirm_timeout_secs: default_confirm_timeout(),
            trunk_username: String::new(),
            trunk_password: crate::sip::config::Secret::default(),
        }
    }
}

/// `[media]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Address written into SDP `c=` lines.
    #[serde(default = "default_localhost")]
    pub advertised_ip: String,
    /// RTP port range `LOW-HIGH`: even ports carry RTP, the next odd one RTCP.
    #[serde(default = "default_rtp_ports")]
    pub rtp_ports: String,
    /// Private or loopback networks (CIDR) that audio URLs may reach.
    #[serde(default)]
    pub audio_fetch_allow: Vec<String>,
    /// Folder local audio paths may be read from; empty: URLs only.
    #[serde(default)]
    pub audio_dir: String,
    /// Music on hold (`ringback = "moh"`): an audio source; empty: the
    /// built-in piece.
    #[serde(default)]
    pub moh: String,
    /// Local address RTP sockets bind to.
    #[serde(default = "default_bind_ip")]
    pub bind_ip: String,
}

fn default_bind_ip() -> String {
    "0.0.0.0".into()
}

fn default_rtp_ports() -> String {
    "20000-29999".into()
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            advertised_ip: default_localhost(),
            rtp_ports: default_rtp_ports(),
            audio_fetch_allow: Vec::new(),
            audio_dir: String::new(),
            moh: String::new(),
            bind_ip: default_bind_ip(),
        }
    }
}

/// `[database]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`.
    #[serde(default = "default_database_url")]
    pub url: String,
    /// Most connections the pool opens.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a request waits for a connection before it gets 503, in
    /// milliseconds.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
}

fn default_database_url() -> String {
    "sqlite://data/mediator.db".into()
}
fn default_max_connections() -> u32 {
    8
}
fn default_acquire_timeout_ms() -> u64 {
    3000
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            max_connections: default_max_connections(),
            acquire_timeout_ms: default_acquire_timeout_ms(),
        }
    }
}

/// `[bindings]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingsConfig {
    /// Seconds between two sweeps that delete expired bindings.
    #[serde(default = "default_sweep_secs")]
    pub expiry_sweep_secs: u64,
}

fn default_sweep_secs() -> u64 {
    10
}

impl Default for BindingsConfig {
    fn default() -> Self {
        Self {
            expiry_sweep_secs: default_sweep_secs(),
        }
    }
}

/// One `[[accounts]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSeed {
    /// The account's name, as the API shows it.
    pub name: String,
    /// The HTTP Basic login.
    pub login: String,
    /// The HTTP Basic password, stored as an argon2 hash.
    pub password: String,
    /// The account's DIDs, E.164 with or without `+`.
    #[serde(default)]
    pub dids: Vec<String>,
    /// Permissions, e.g. `hide_origination_did`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Where call detail records are POSTed (`http://` or `https://`);
    /// unset: the stored value (from `mediator account callback`) stays.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// The secret deliveries are signed with (HMAC-SHA256); unset: the
    /// stored one stays, or a random one is made.
    #[serde(default)]
    pub callback_secret: Option<String>,
}

/// Permissions an account may hold (config `permissions`).
pub const KNOWN_PERMISSIONS: &[&str] = &["hide_origination_did"];

impl Config {
    /// Reads `path`, applies the environment overrides from `env` (pairs of
    /// name and value, normally `std::env::vars()`) and validates the result.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string(), env)
    }

    /// Parses TOML `text` (`origin` names it in errors), applies overrides and
    /// validates.
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        apply_env(&mut table, env)?;
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that parsed but may still be unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.api.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "api.listen",
                format!("`{}` is not IP:PORT ({e})", self.api.listen),
            )
        })?;
        let url = &self.api.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "api.public_url",
                "must start with http:// or https://",
            ));
        }
        if self.sip.listen.is_empty() {
            return Err(invalid("sip.listen", "needs at least one listener"));
        }
        for (i, l) in self.sip.listen.iter().enumerate() {
            parse_listener(l).map_err(|p| invalid(format!("sip.listen[{i}]"), p))?;
        }
        if self.sip.advertised_host.trim().is_empty() {
            return Err(invalid("sip.advertised_host", "must not be empty"));
        }
        if !(self.sip.trunk.starts_with("sip:") || self.sip.trunk.starts_with("sips:")) {
            return Err(invalid(
                "sip.trunk",
                format!("`{}` is not a sip: URI", self.sip.trunk),
            ));
        }
        for (i, net) in self.sip.trusted.iter().enumerate() {
            parse_net(net).map_err(|p| invalid(format!("sip.trusted[{i}]"), p))?;
        }
        self.media
            .advertised_ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| {
                invalid(
                    "media.advertised_ip",
                    format!("`{}` is not an IP address", self.media.advertised_ip),
                )
            })?;
        self.media
            .bind_ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| {
                invalid(
                    "media.bind_ip",
                    format!("`{}` is not an IP address", self.media.bind_ip),
                )
            })?;
        if self.sip.confirm_timeout_secs == 0 {
            return Err(invalid("sip.confirm_timeout_secs", "must be at least 1"));
        }
        if self.sip.ring_timeout_secs == 0 {
            return Err(invalid("sip.ring_timeout_secs", "must be at least 1"));
        }
        if self.sip.min_se_secs < 90 {
            return Err(invalid(
                "sip.min_se_secs",
                "must be at least 90 (RFC 4028 section 5)",
            ));
        }
        if self.sip.session_expires_secs < self.sip.min_se_secs {
            return Err(invalid(
                "sip.session_expires_secs",
                "must be at least sip.min_se_secs",
            ));
        }
        if self.sip.trunk_username.trim().is_empty() != self.sip.trunk_password.is_empty() {
            return Err(invalid(
                "sip.trunk_password",
                "sip.trunk_username and sip.trunk_password are set together or not at all",
            ));
        }
        parse_port_range(&self.media.rtp_ports).map_err(|p| invalid("media.rtp_ports", p))?;
        if !self.metrics.listen.is_empty() {
            self.metrics.listen.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "metrics.listen",
                    format!("`{}` is not IP:PORT ({e})", self.metrics.listen),
                )
            })?;
        }
        if !matches!(self.log.format.as_str(), "" | "text" | "json") {
            return Err(invalid("log.format", "must be `text` or `json`"));
        }
        if self.callbacks.initial_backoff_ms == 0 || self.callbacks.concurrency == 0 {
            return Err(invalid(
                "callbacks",
                "initial_backoff_ms and concurrency must be at least 1",
            ));
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if let Some(u) = &a.callback_url
                && !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(invalid(
                    format!("accounts[{i}].callback_url"),
                    "must start with http:// or https://",
                ));
            }
        }
        for (i, net) in self.media.audio_fetch_allow.iter().enumerate() {
            parse_net(net).map_err(|p| invalid(format!("media.audio_fetch_allow[{i}]"), p))?;
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                format!("`{url}` is neither sqlite:... nor postgres://..."),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.dialouts.poll_ms == 0 {
            return Err(invalid("dialouts.poll_ms", "must be at least 1"));
        }
        if self.dialouts.batch == 0 {
            return Err(invalid("dialouts.batch", "must be at least 1"));
        }
        if self.dialouts.stale_started_secs == 0 {
            return Err(invalid("dialouts.stale_started_secs", "must be at least 1"));
        }
        if self.bindings.expiry_sweep_secs == 0 {
            return Err(invalid("bindings.expiry_sweep_secs", "must be at least 1"));
        }
        let mut logins = BTreeMap::new();
        for (i, a) in self.accounts.iter().enumerate() {
            if a.login.trim().is_empty() || a.login.contains(':') {
                return Err(invalid(
                    format!("accounts[{i}].login"),
                    "must be non-empty and contain no ':'",
                ));
            }
            if logins.insert(a.login.clone(), i).is_some() {
                return Err(invalid(
                    format!("accounts[{i}].login"),
                    format!("`{}` is used twice", a.login),
                ));
            }
            if a.password.is_empty() {
                return Err(invalid(
                    format!("accounts[{i}].password"),
                    "must not be empty",
                ));
            }
            for (j, did) in a.dids.iter().enumerate() {
                PhoneNumber::parse(did)
                    .map_err(|e| invalid(format!("accounts[{i}].dids[{j}]"), e.to_string()))?;
            }
            for (j, p) in a.permissions.iter().enumerate() {
                if !KNOWN_PERMISSIONS.contains(&p.as_str()) {
                    return Err(invalid(
                        format!("accounts[{i}].permissions[{j}]"),
                        format!(
                            "unknown permission `{p}`; known: {}",
                            KNOWN_PERMISSIONS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Applies `MEDIATOR_<SECTION>_<KEY>` overrides onto the parsed table.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    const SECTIONS: &[&str] = &[
        "api",
        "sip",
        "media",
        "database",
        "bindings",
        "callbacks",
        "dialouts",
        "metrics",
        "log",
    ];
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("MEDIATOR_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        if !SECTIONS.contains(&section) || key.is_empty() {
            // Not a config key (for example MEDIATOR_LOG); leave it alone.
            continue;
        }
        let parsed = parse_env_value(&value);
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(invalid(section, "must be a table"));
        };
        section_table.insert(key.to_string(), parsed);
    }
    Ok(())
}

/// Reads an override's value as a TOML value, or as a string when it is not one.
fn parse_env_value(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

/// A SIP listener from `sip.listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// `udp` or `tcp`.
    pub transport: Transport,
    /// The local address.
    pub addr: SocketAddr,
}

/// SIP transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 3261 section 18 over UDP.
    Udp,
    /// RFC 3261 section 18 over TCP.
    Tcp,
}

/// Parses `udp:IP:PORT` or `tcp:IP:PORT`.
pub fn parse_listener(s: &str) -> Result<Listener, String> {
    let (t, addr) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not TRANSPORT:IP:PORT"))?;
    let transport = match t.to_ascii_lowercase().as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        other => return Err(format!("unknown transport `{other}` (udp or tcp)")),
    };
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|e| format!("`{addr}` is not IP:PORT ({e})"))?;
    Ok(Listener { transport, addr })
}

/// Parses a CIDR network or a lone address (taken as a /32 or /128).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not a network like 10.0.0.0/8"))
}

/// Parses `LOW-HIGH` into an inclusive range of UDP ports with at least one
/// even/odd pair.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not LOW-HIGH"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("`{lo}` is not a port"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("`{hi}` is not a port"))?;
    if lo < 1024 || hi <= lo {
        return Err(format!("`{s}`: need 1024 <= LOW < HIGH"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn shipped_default_config_is_valid() {
        let text = include_str!("../config/mediator.toml");
        let c = Config::from_toml(text, "config/mediator.toml", env(&[])).expect("valid");
        assert_eq!(c.api.listen, "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://data/mediator.db");
        assert_eq!(c.sip.listen, vec!["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]);
        assert_eq!(c.accounts.len(), 1);
    }

    #[test]
    fn environment_overrides_keys_and_arrays() {
        let c = Config::from_toml(
            "",
            "test",
            env(&[
                ("MEDIATOR_DATABASE_URL", "postgres://u@h/db"),
                ("MEDIATOR_SIP_ADVERTISED_HOST", "10.1.2.3"),
                ("MEDIATOR_SIP_TRUSTED", r#"["10.0.0.0/8", "192.0.2.1"]"#),
                ("MEDIATOR_DATABASE_MAX_CONNECTIONS", "3"),
                ("MEDIATOR_LOG", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.database.url, "postgres://u@h/db");
        assert_eq!(c.sip.advertised_host, "10.1.2.3");
        assert_eq!(c.sip.trusted, vec!["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(c.database.max_connections, 3);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[sip]\ntrusted = [\"nonsense\"]", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("sip.trusted[0]"), "{e}");
        let e = Config::from_toml("[api]\nlisten = \"nowhere\"", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("api.listen"), "{e}");
        let e = Config::from_toml("[api]\nlisen = \"x\"", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::from_toml(
            "",
            "t",
            env(&[("MEDIATOR_DATABASE_MAX_CONNECTIONS", "many")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_connections"), "{e}");
        let e = Config::from_toml(
            "[[accounts]]\nname='a'\nlogin='a'\npassword='p'\ndids=['12']",
            "t",
            env(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("accounts[0].dids[0]"), "{e}");
        let e =
            Config::from_toml("[media]\nrtp_ports = \"30000-20000\"", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("media.rtp_ports"), "{e}");
    }
}

//! The `[sip]` section of the config, and its validation.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::SipError;

/// SIP settings; mirrors the `[sip]` section of `config/mediator.toml`.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Listeners as `"udp:IP:PORT"` or `"tcp:IP:PORT"`.
    pub listen: Vec<String>,
    /// Host (name or IP) written into our Via and Contact headers.
    pub advertised_host: String,
    /// Where every outbound (B) leg is sent, e.g. `"sip:127.0.0.1:5080"` or
    /// `"sip:127.0.0.1:5080;transport=tcp"`.
    pub trunk: String,
    /// Networks (CIDR, or a bare IP) allowed to send INVITEs; others get 403.
    pub trusted: Vec<String>,
    /// How long the B leg may ring before the call fails with 408, in seconds.
    pub ring_timeout_secs: u64,
    /// After the shutdown signal, how long established calls may continue, in
    /// seconds; then they are hung up.
    pub drain_secs: u64,
    /// RFC 4028 session interval we ask for, in seconds.
    pub session_expires_secs: u32,
    /// RFC 4028 Min-SE we accept, in seconds (at least 90).
    pub min_se_secs: u32,
    /// How many times one B leg follows a 3xx from the trunk (RFC 3261
    /// §8.1.3.4), counted over the whole call; 0: never (the 3xx is mapped
    /// to a failure for the caller).
    pub max_redirects: u32,
    /// How long a dialout waits for stage one's confirming digit after the
    /// confirmation prompt, in seconds.
    pub confirm_timeout_secs: u64,
    /// Digest username for the trunk's 401/407 challenges (RFC 3261 §22);
    /// empty: challenges are not answered.
    pub trunk_username: String,
    /// Digest password for the trunk; never logged.
    pub trunk_password: Secret,
}

/// A string that must not appear in logs: its `Debug` prints `***`.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it (the digest).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether it is empty (not configured).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Credentials Mediator answers the trunk's digest challenges with.
#[derive(Debug, Clone)]
pub struct TrunkCredentials {
    /// Digest username.
    pub username: String,
    /// Digest password.
    pub password: Secret,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec!["udp:0.0.0.0:5060".into(), "tcp:0.0.0.0:5060".into()],
            advertised_host: "127.0.0.1".into(),
            trunk: "sip:127.0.0.1:5080".into(),
            trusted: vec!["127.0.0.0/8".into()],
            ring_timeout_secs: 60,
            drain_secs: 30,
            session_expires_secs: 1800,
            min_se_secs: 90,
            max_redirects: 3,
            confirm_timeout_secs: 8,
            trunk_username: String::new(),
            trunk_password: Secret::default(),
        }
    }
}

/// Transport of a listener or of the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// SIP over UDP (RFC 3261 §18.1).
    Udp,
    /// SIP over TCP (RFC 3261 §18.1).
    Tcp,
}

impl Proto {
    /// The token used in Via (`UDP`, `TCP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }
    /// The value of a URI `transport=` parameter.
    pub fn uri_param(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// One parsed listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// Transport.
    pub proto: Proto,
    /// Local socket address to bind.
    pub addr: SocketAddr,
}

/// The trunk, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Host as written (IP or name).
    pub host: String,
    /// Port (default 5060).
    pub port: u16,
    /// Transport (default UDP).
    pub proto: Proto,
}

/// [`SipConfig`] checked and parsed.
#[derive(Debug, Clone)]
pub struct ValidSipConfig {
    /// Listeners.
    pub listen: Vec<Listen>,
    /// Advertised host.
    pub advertised_host: String,
    /// Trunk.
    pub trunk: Trunk,
    /// Trusted networks.
    pub trusted: Vec<IpNet>,
    /// Ring timeout.
    pub ring_timeout: std::time::Duration,
    /// How long a dialout waits for the confirming digit after its prompt.
    pub confirm_timeout: std::time::Duration,
    /// Drain time.
    pub drain: std::time::Duration,
    /// Session timer settings (RFC 4028).
    pub timers: crate::call::session_timer::TimerConfig,
    /// 3xx responses followed per call at most (RFC 3261 §8.1.3.4).
    pub max_redirects: u32,
    /// Credentials for the trunk's digest challenges, when configured.
    pub trunk_credentials: Option<TrunkCredentials>,
}

impl ValidSipConfig {
    /// Whether `ip` may send us INVITEs.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }
    /// The listener port for `proto` (the first listener of that transport).
    pub fn port_for(&self, proto: Proto) -> Option<u16> {
        self.listen
            .iter()
            .find(|l| l.proto == proto)
            .map(|l| l.addr.port())
    }
}

/// Parses `"udp:IP:PORT"` / `"tcp:IP:PORT"`.
pub fn parse_listen(s: &str) -> Result<Listen, SipError> {
    let bad = || {
        SipError::Config(format!(
            "sip.listen: {s:?} is not \"udp:IP:PORT\" or \"tcp:IP:PORT\""
        ))
    };
    let (proto, addr) = s.split_once(':').ok_or_else(bad)?;
    let proto = match proto.to_ascii_lowercase().as_str() {
        "udp" => Proto::Udp,
        "tcp" => Proto::Tcp,
        _ => return Err(bad()),
    };
    let addr: SocketAddr = addr.parse().map_err(|_| bad())?;
    Ok(Listen { proto, addr })
}

/// Parses the trunk URI `sip:HOST[:PORT][;transport=udp|tcp]`.
pub fn parse_trunk(s: &str) -> Result<Trunk, SipError> {
    let bad = |why: &str| SipError::Config(format!("sip.trunk: {s:?} {why}"));
    let rest = s
        .trim()
        .strip_prefix("sip:")
        .ok_or_else(|| bad("must start with sip:"))?;
    let mut parts = rest.split(';');
    let hostport = parts.next().unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let mut proto = Proto::Udp;
    for p in parts {
        if let Some(t) = p.strip_prefix("transport=") {
            proto = match t.to_ascii_lowercase().as_str() {
                "udp" => Proto::Udp,
                "tcp" => Proto::Tcp,
                _ => return Err(bad("has an unsupported transport")),
            };
        }
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
            h.to_string(),
            p.parse::<u16>().map_err(|_| bad("has a bad port"))?,
        ),
        _ => (hostport.to_string(), 5060),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok(Trunk { host, port, proto })
}

/// Parses a CIDR (`127.0.0.0/8`) or a bare IP (a /32 or /128).
pub fn parse_net(s: &str) -> Result<IpNet, SipError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| SipError::Config(format!("sip.trusted: {s:?} is not a CIDR or IP address")))
}

impl SipConfig {
    /// Checks every field and returns the parsed form.
    pub fn validate(&self) -> Result<ValidSipConfig, SipError> {
        if self.listen.is_empty() {
            return Err(SipError::Config("sip.listen is empty".into()));
        }
        let listen = self
            .listen
            .iter()
            .map(|s| parse_listen(s))
            .collect::<Result<Vec<_>, _>>()?;
        if self.advertised_host.trim().is_empty() {
            return Err(SipError::Config("sip.advertised_host is empty".into()));
        }
        let trunk = parse_trunk(&self.trunk)?;
        if !listen.iter().any(|l| l.proto == trunk.proto) {
            return Err(SipError::Config(format!(
                "sip.trunk uses {} but sip.listen has no {} listener",
                trunk.proto.uri_param(),
                trunk.proto.uri_param()
            )));
        }
        let trusted = self
            .trusted
            .iter()
            .map(|s| parse_net(s))
            .collect::<Result<Vec<_>, _>>()?;
        if self.ring_timeout_secs == 0 {
            return Err(SipError::Config("sip.ring_timeout_secs must be > 0".into()));
        }
        let trunk_credentials = match (
            self.trunk_username.trim().is_empty(),
            self.trunk_password.is_empty(),
        ) {
            (true, true) => None,
            (false, false) => Some(TrunkCredentials {
                username: self.trunk_username.trim().to_string(),
                password: self.trunk_password.clone(),
            }),
            _ => {
                return Err(SipError::Config(
                    "sip.trunk_username and sip.trunk_password go together".into(),
                ));
            }
        };
        Ok(ValidSipConfig {
            listen,
            advertised_host: self.advertised_host.trim().to_string(),
            trunk,
            trusted,
            ring_timeout: std::time::Duration::from_secs(self.ring_timeout_secs),
            confirm_timeout: std::time::Duration::from_secs(self.confirm_timeout_secs.max(1)),
            drain: std::time::Duration::from_secs(self.drain_secs),
            timers: crate::call::session_timer::TimerConfig {
                session_expires: self.session_expires_secs.max(self.min_se_secs),
                min_se: self.min_se_secs.max(crate::call::session_timer::RFC_MIN_SE),
            },
            max_redirects: self.max_redirects,
            trunk_credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_and_trunk() {
        let l = parse_listen("tcp:127.0.0.1:5060").expect("listen");
        assert_eq!(l.proto, Proto::Tcp);
        assert!(parse_listen("sctp:1.2.3.4:5").is_err());
        let t = parse_trunk("sip:127.0.0.1:5080;transport=tcp").expect("trunk");
        assert_eq!(
            (t.host.as_str(), t.port, t.proto),
            ("127.0.0.1", 5080, Proto::Tcp)
        );
        let t = parse_trunk("sip:trunk.example.com").expect("trunk");
        assert_eq!((t.port, t.proto), (5060, Proto::Udp));
        assert!(parse_trunk("http://x").is_err());
    }

    #[test]
    fn trusted_networks() {
        let mut c = SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into()],
            trusted: vec!["127.0.0.1/32".into(), "10.0.0.1".into()],
            ..SipConfig::default()
        };
        let v = c.validate().expect("valid");
        assert!(v.is_trusted("127.0.0.1".parse().expect("ip")));
        assert!(!v.is_trusted("127.0.0.2".parse().expect("ip")));
        assert!(v.is_trusted("10.0.0.1".parse().expect("ip")));
        c.trusted = vec!["nonsense".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn trunk_credentials_go_together_and_the_password_is_not_printed() {
        let mut c = SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into()],
            ..SipConfig::default()
        };
        assert!(c.validate().expect("valid").trunk_credentials.is_none());
        c.trunk_username = "trunk-user".into();
        assert!(c.validate().is_err(), "a username needs a password");
        c.trunk_password = Secret::new("hunter2");
        let v = c.validate().expect("valid");
        let creds = v.trunk_credentials.expect("credentials");
        assert_eq!(creds.password.expose(), "hunter2");
        let shown = format!("{c:?} {creds:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}

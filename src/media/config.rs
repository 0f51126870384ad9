//! The `[media]` section of the config.

use std::net::IpAddr;

use super::MediaError;
use super::audio::FetchRules;

/// Media settings; mirrors the `[media]` section of `config/mediator.toml`.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address written into SDP `c=` lines (RFC 4566 §5.7).
    pub advertised_ip: String,
    /// RTP port range `"LOW-HIGH"`: RTP uses even ports, RTCP the next odd
    /// one (RFC 3550 §11).
    pub rtp_ports: String,
    /// Local address the RTP sockets bind to (not in the file contract;
    /// `0.0.0.0` by default).
    pub bind_ip: IpAddr,
    /// How audio sources are fetched and cached.
    pub fetch: FetchRules,
    /// Music on hold: an audio source, or empty for the built-in piece
    /// (`assets/moh.wav`).
    pub moh: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            advertised_ip: "127.0.0.1".into(),
            rtp_ports: "20000-29999".into(),
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            fetch: FetchRules::default(),
            moh: String::new(),
        }
    }
}

/// [`MediaConfig`] checked and parsed.
#[derive(Debug, Clone)]
pub struct ValidMediaConfig {
    /// Address for SDP.
    pub advertised_ip: IpAddr,
    /// First port of the range (even).
    pub low: u16,
    /// Last port of the range.
    pub high: u16,
    /// Bind address.
    pub bind_ip: IpAddr,
    /// How audio sources are fetched and cached.
    pub fetch: FetchRules,
    /// Music-on-hold source; empty: built in.
    pub moh: String,
}

impl MediaConfig {
    /// Checks every field and returns the parsed form.
    pub fn validate(&self) -> Result<ValidMediaConfig, MediaError> {
        let advertised_ip: IpAddr = self.advertised_ip.trim().parse().map_err(|_| {
            MediaError::Config(format!(
                "media.advertised_ip: {:?} is not an IP address",
                self.advertised_ip
            ))
        })?;
        let (low, high) = parse_range(&self.rtp_ports)?;
        Ok(ValidMediaConfig {
            advertised_ip,
            low,
            high,
            bind_ip: self.bind_ip,
            fetch: self.fetch.clone(),
            moh: self.moh.clone(),
        })
    }
}

/// Parses `"LOW-HIGH"`; LOW is rounded up to even, and the range must hold
/// at least one even/odd pair.
pub fn parse_range(s: &str) -> Result<(u16, u16), MediaError> {
    let bad = |why: &str| MediaError::Config(format!("media.rtp_ports: {s:?} {why}"));
    let (l, h) = s
        .trim()
        .split_once('-')
        .ok_or_else(|| bad("is not LOW-HIGH"))?;
    let low: u16 = l.trim().parse().map_err(|_| bad("has a bad low port"))?;
    let high: u16 = h.trim().parse().map_err(|_| bad("has a bad high port"))?;
    let low = low
        .checked_add(low % 2)
        .ok_or_else(|| bad("is out of range"))?;
    if low < 1024 || high <= low {
        return Err(bad("must be LOW-HIGH with 1024 <= LOW < HIGH"));
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("20000-29999").expect("range"), (20000, 29999));
        assert_eq!(parse_range("20001-20003").expect("range"), (20002, 20003));
        assert!(parse_range("20000").is_err());
        assert!(parse_range("30000-20000").is_err());
        assert!(parse_range("100-200").is_err());
    }
}

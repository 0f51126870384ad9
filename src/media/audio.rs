//! Audio sources for announcements and music on hold: fetched over HTTP(S)
//! (or read from a local folder when config allows), decoded (WAV with 8,
//! 16 or 24-bit PCM, MP3), downmixed to mono and resampled to 8 kHz, then
//! cached in memory.
//!
//! Fetching is guarded against server-side request forgery: every address
//! a host name resolves to, and every IP literal in the URL or in a
//! redirect, must be public unless it lies in one of the networks that
//! `media.audio_fetch_allow` lists. Loopback, private (RFC 1918, RFC 4193),
//! link-local, carrier-grade NAT, unspecified, multicast and broadcast
//! addresses are refused. There are connect and total timeouts, a byte cap
//! and a bounded number of redirects.
//!
//! The cache holds decoded clips up to a byte bound (least recently used
//! out first) and revalidates an entry older than
//! [`FetchRules::fresh_for`] with `If-None-Match` / `If-Modified-Since`
//! (RFC 9110 §13.1): a 304 keeps the decoded clip.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use moka::policy::EvictionPolicy;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use tracing::{debug, warn};

/// The sample rate of every decoded clip, in Hz (G.711, RFC 3551 §4.5.14).
pub const RATE: u32 = 8000;

/// Errors of fetching and decoding an audio source.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The source is neither an http(s) URL nor an allowed local path.
    #[error("unsupported audio source {0:?}")]
    Unsupported(String),
    /// The URL's host is, or resolves to, an address that is not allowed.
    #[error("audio source address refused: {0}")]
    Refused(String),
    /// The server answered with a status other than 200 (or 304).
    #[error("audio source answered HTTP {0}")]
    Status(u16),
    /// The body is larger than the cap.
    #[error("audio source larger than {0} bytes")]
    TooLarge(u64),
    /// Connecting, redirects or reading failed or timed out.
    #[error("audio fetch failed: {0}")]
    Fetch(String),
    /// A local file could not be read.
    #[error("audio file: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not WAV or MP3 we can decode.
    #[error("audio decode failed: {0}")]
    Decode(String),
}

/// A decoded clip: 8 kHz mono linear PCM.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Samples at [`RATE`], 16-bit signed.
    pub samples: Vec<i16>,
}

impl Clip {
    /// The clip's length.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.samples.len() as u64 * 1000 / u64::from(RATE))
    }
}

/// Fetch and cache rules; built from the `[media]` config.
#[derive(Debug, Clone)]
pub struct FetchRules {
    /// Networks that may be reached although private or loopback
    /// (`media.audio_fetch_allow`).
    pub allow: Vec<IpNet>,
    /// Folder local paths may be read from (`media.audio_dir`); `None`:
    /// URLs only.
    pub local_dir: Option<PathBuf>,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included.
    pub total_timeout: Duration,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
    /// Most redirects followed.
    pub max_redirects: usize,
    /// Bound of the decoded-clip cache, in bytes of samples.
    pub cache_bytes: u64,
    /// How long a cached clip is used without asking the server again.
    pub fresh_for: Duration,
}

impl Default for FetchRules {
    fn default() -> Self {
        FetchRules {
            allow: Vec::new(),
            local_dir: None,
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            max_bytes: 10 * 1024 * 1024,
            max_redirects: 3,
            cache_bytes: 64 * 1024 * 1024,
            fresh_for: Duration::from_secs(30),
        }
    }
}

/// Whether `ip` may be fetched from: public, or inside an allowed network.
pub fn address_allowed(ip: IpAddr, allow: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if allow.iter().any(|n| n.contains(&ip)) {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)) // RFC 6598 shared space
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, RFC 4193
                || (s[0] & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// Resolves host names for the client, keeping only allowed addresses, so
/// a name that points inside cannot be reached (also after a redirect).
struct GuardedResolver {
    allow: Vec<IpNet>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| address_allowed(a.ip(), &allow))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no allowed address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Checks a URL's scheme and, for an IP literal host, its address.
fn check_url(url: &reqwest::Url, allow: &[IpNet]) -> Result<(), AudioError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AudioError::Unsupported(url.to_string()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| AudioError::Unsupported(url.to_string()))?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) if !address_allowed(ip, allow) => Err(AudioError::Refused(ip.to_string())),
        _ => Ok(()),
    }
}

struct Cached {
    clip: Arc<Clip>,
    etag: Option<String>,
    last_modified: Option<String>,
    checked: Instant,
}

/// Installs ring as the process's rustls provider (DESIGN.md: reqwest is
/// built without one and panics without it). Calling it again does nothing.
/// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
/// exchange; ring is the project's chosen provider all the same.
#[allow(deprecated)]
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Fetches, decodes and caches audio sources. One per process.
pub struct AudioLoader {
    rules: FetchRules,
    client: reqwest::Client,
    cache: moka::sync::Cache<String, Arc<Cached>>,
    failures: AtomicU64,
}

impl AudioLoader {
    /// A loader with `rules`. Installs the ring TLS provider first (the
    /// client panics without one).
    pub fn new(rules: FetchRules) -> Result<AudioLoader, AudioError> {
        install_tls_provider();
        let allow = rules.allow.clone();
        let max = rules.max_redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(format!("more than {max} redirects"));
            }
            match check_url(attempt.url(), &allow) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e.to_string()),
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(rules.connect_timeout)
            .timeout(rules.total_timeout)
            .redirect(policy)
            .dns_resolver(Arc::new(GuardedResolver {
                allow: rules.allow.clone(),
            }))
            .user_agent(concat!("mediator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AudioError::Fetch(e.to_string()))?;
        let cache = moka::sync::Cache::builder()
            .max_capacity(rules.cache_bytes)
            .weigher(|k: &String, v: &Arc<Cached>| {
                let bytes = k.len() + v.clip.samples.len() * 2 + 64;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Ok(AudioLoader {
            rules,
            client,
            cache,
            failures: AtomicU64::new(0),
        })
    }

    /// Sources that failed to load so far (fetch or decode).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Loads `source` (a URL, or a path under the allowed folder), from
    /// the cache when fresh. A failure is logged and counted.
    pub async fn load(&self, source: &str) -> Result<Arc<Clip>, AudioError> {
        let r = self.load_inner(source).await;
        if let Err(e) = &r {
            self.failures.fetch_add(1, Ordering::Relaxed);
            warn!(source, error = %e, "audio source not played");
        }
        r
    }

    async fn load_inner(&self, source: &str) -> Result<Arc<Clip>, AudioError> {
        let source = source.trim();
        if !(source.starts_with("http://") || source.starts_with("https://")) {
            return self.load_local(source).await;
        }
        let url =
            reqwest::Url::parse(source).map_err(|_| AudioError::Unsupported(source.to_string()))?;
        check_url(&url, &self.rules.allow)?;
        let cached = self.cache.get(source);
        if let Some(c) = &cached
            && c.checked.elapsed() < self.rules.fresh_for
        {
            return Ok(c.clip.clone());
        }
        let mut req = self.client.get(url);
        if let Some(c) = &cached {
            if let Some(e) = &c.etag {
                req = req.header(IF_NONE_MATCH, e);
            }
            if let Some(m) = &c.last_modified {
                req = req.header(IF_MODIFIED_SINCE, m);
            }
        }
        let fetch = |e: reqwest::Error| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            AudioError::Fetch(s)
        };
        let mut resp = req.send().await.map_err(fetch)?;
        let status = resp.status().as_u16();
        if status == 304
            && let Some(c) = cached
        {
            debug!(source, "audio source not modified");
            self.cache.insert(
                source.to_string(),
                Arc::new(Cached {
                    clip: c.clip.clone(),
                    etag: c.etag.clone(),
                    last_modified: c.last_modified.clone(),
                    checked: Instant::now(),
                }),
            );
            return Ok(c.clip.clone());
        }
        if status != 200 {
            return Err(AudioError::Status(status));
        }
        let cap = self.rules.max_bytes;
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(AudioError::TooLarge(cap));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fetch)? {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(AudioError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        let clip = Arc::new(decode_blocking(body, hint_of(source)).await?);
        self.cache.insert(
            source.to_string(),
            Arc::new(Cached {
                clip: clip.clone(),
                etag,
                last_modified,
                checked: Instant::now(),
            }),
        );
        Ok(clip)
    }

    async fn load_local(&self, source: &str) -> Result<Arc<Clip>, AudioError> {
        let Some(dir) = &self.rules.local_dir else {
            return Err(AudioError::Unsupported(source.to_string()));
        };
        let path = resolve_local(dir, source)?;
        let key = path.to_string_lossy().to_string();
        let meta = tokio::fs::metadata(&path).await?;
        if meta.len() > self.rules.max_bytes {
            return Err(AudioError::TooLarge(self.rules.max_bytes));
        }
        let stamp = meta
            .modified()
            .ok()
            .map(|m| format!("{m:?}/{}", meta.len()));
        if let Some(c) = self.cache.get(&key)
            && c.etag == stamp
        {
            return Ok(c.clip.clone());
        }
        let bytes = tokio::fs::read(&path).await?;
        let clip = Arc::new(decode_blocking(bytes, hint_of(source)).await?);
        self.cache.insert(
            key,
            Arc::new(Cached {
                clip: clip.clone(),
                etag: stamp,
                last_modified: None,
                checked: Instant::now(),
            }),
        );
        Ok(clip)
    }
}

/// A local source inside `dir`: relative to it, or absolute under it; no
/// `..` (the folder is the whole of what may be read).
fn resolve_local(dir: &Path, source: &str) -> Result<PathBuf, AudioError> {
    let s = source.strip_prefix("file://").unwrap_or(source);
    let p = Path::new(s);
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(AudioError::Unsupported(source.to_string()));
    }
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    if !full.starts_with(dir) {
        return Err(AudioError::Unsupported(source.to_string()));
    }
    Ok(full)
}

/// The file extension of a source, as a decoder hint.
fn hint_of(source: &str) -> Option<String> {
    let path = source.split(['?', '#']).next().unwrap_or(source);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    (ext.len() <= 4 && ext.chars().all(|c| c.is_ascii_alphanumeric())).then_some(ext)
}

async fn decode_blocking(bytes: Vec<u8>, hint: Option<String>) -> Result<Clip, AudioError> {
    tokio::task::spawn_blocking(move || decode(bytes, hint.as_deref()))
        .await
        .map_err(|e| AudioError::Decode(e.to_string()))?
}

/// Longest decoded clip, in seconds at the source rate (bounds memory for
/// a small but very long MP3).
const MAX_SECONDS: u64 = 600;

/// Decodes a WAV or MP3 file to 8 kHz mono.
pub fn decode(bytes: Vec<u8>, hint: Option<&str>) -> Result<Clip, AudioError> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::TrackType;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::io::MediaSourceStream;

    let bad = |e: Error| AudioError::Decode(e.to_string());
    let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let mut h = Hint::new();
    if let Some(ext) = hint {
        h.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(&h, mss, Default::default(), Default::default())
        .map_err(bad)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Decode("no audio track".into()))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Decode("no audio parameters".into()))?
        .clone();
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(bad)?;
    let mut mono: Vec<f32> = Vec::new();
    let mut rate = params.sample_rate.unwrap_or(RATE);
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(bad(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            Err(Error::DecodeError(_)) => continue,
            Err(e) => return Err(bad(e)),
        };
        rate = buf.spec().rate();
        let channels = buf.spec().channels().count().max(1);
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        mono.extend(
            interleaved
                .chunks(channels)
                .map(|f| f.iter().sum::<f32>() / channels as f32),
        );
        if mono.len() as u64 > MAX_SECONDS * u64::from(rate.max(1)) {
            return Err(AudioError::Decode(format!("longer than {MAX_SECONDS} s")));
        }
    }
    if mono.is_empty() {
        return Err(AudioError::Decode("no samples".into()));
    }
    let at_8k = resample(&mono, rate)?;
    Ok(Clip {
        samples: at_8k
            .iter()
            .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .collect(),
    })
}

/// Resamples mono `samples` at `rate` Hz to [`RATE`] (rubato's FFT
/// resampler, which low-passes before decimating).
pub fn resample(samples: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{Fft, FixedSync, Resampler};
    if rate == RATE {
        return Ok(samples.to_vec());
    }
    if rate == 0 {
        return Err(AudioError::Decode("sample rate 0".into()));
    }
    let bad = |e: &dyn std::fmt::Display| AudioError::Decode(format!("resample: {e}"));
    let mut r = Fft::<f32>::new(rate as usize, RATE as usize, 1024, 1, FixedSync::Both)
        .map_err(|e| bad(&e))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| bad(&e))?;
    let out = r
        .process_all(&input, samples.len(), None)
        .map_err(|e| bad(&e))?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A RIFF/WAVE file of 16-bit PCM.
    pub(crate) fn wav16(rate: u32, channels: u16, frames: &[Vec<i16>]) -> Vec<u8> {
        let data: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.iter().flat_map(|s| s.to_le_bytes()))
            .collect();
        wav(rate, channels, 16, &data)
    }

    fn wav(rate: u32, channels: u16, bits: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn sine(rate: u32, hz: f32, secs: f32, amp: f32) -> Vec<i16> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| {
                ((2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * amp * 32767.0)
                    as i16
            })
            .collect()
    }

    use crate::media::tones::tests::power as goertzel;

    #[test]
    fn addresses() {
        let none: Vec<IpNet> = vec![];
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            let ip: IpAddr = bad.parse().expect("ip");
            assert!(!address_allowed(ip, &none), "{bad} must be refused");
        }
        for good in ["8.8.8.8", "2001:4860::8888", "172.32.0.1"] {
            let ip: IpAddr = good.parse().expect("ip");
            assert!(address_allowed(ip, &none), "{good} is public");
        }
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().expect("net")];
        assert!(address_allowed("127.0.0.1".parse().expect("ip"), &allow));
        assert!(!address_allowed("10.0.0.1".parse().expect("ip"), &allow));
    }

    #[test]
    fn wav_44k1_stereo_becomes_8k_mono() {
        let left = sine(44100, 1000.0, 1.0, 0.5);
        let frames: Vec<Vec<i16>> = left.iter().map(|&s| vec![s, s]).collect();
        let clip = decode(wav16(44100, 2, &frames), Some("wav")).expect("decodes");
        let n = clip.samples.len() as i64;
        assert!((n - 8000).abs() <= 16, "{n} samples for one second");
        let mid = &clip.samples[1000..7000];
        assert!(goertzel(mid, 1000.0) > 50.0 * goertzel(mid, 2000.0));
        let peak = mid.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((14000..18500).contains(&peak), "amplitude kept: {peak}");
    }

    #[test]
    fn wav_8_and_24_bit() {
        // 8-bit PCM is unsigned (128 = silence); 24-bit little-endian.
        let s = sine(16000, 500.0, 0.5, 0.5);
        let d8: Vec<u8> = s.iter().map(|v| ((v >> 8) + 128) as u8).collect();
        let d24: Vec<u8> = s
            .iter()
            .flat_map(|v| {
                let x = i32::from(*v) << 8;
                [x as u8, (x >> 8) as u8, (x >> 16) as u8]
            })
            .collect();
        for (bits, data) in [(8u16, d8), (24, d24)] {
            let clip = decode(wav(16000, 1, bits, &data), Some("wav")).expect("decodes");
            assert!((clip.samples.len() as i64 - 4000).abs() <= 16, "{bits} bit");
            let mid = &clip.samples[500..3500];
            assert!(
                goertzel(mid, 500.0) > 50.0 * goertzel(mid, 1500.0),
                "{bits} bit"
            );
        }
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let e = decode(b"this is not audio at all".to_vec(), Some("wav")).unwrap_err();
        assert!(matches!(e, AudioError::Decode(_)), "{e}");
    }

    #[test]
    fn local_paths_stay_inside() {
        let dir = Path::new("/srv/audio");
        assert_eq!(
            resolve_local(dir, "a/b.wav").expect("ok"),
            Path::new("/srv/audio/a/b.wav")
        );
        assert!(resolve_local(dir, "../etc/passwd").is_err());
        assert!(resolve_local(dir, "/etc/passwd").is_err());
        assert!(resolve_local(dir, "file:///srv/audio/x.mp3").is_ok());
        assert_eq!(hint_of("http://h/x.MP3?a=1"), Some("mp3".into()));
    }

    /// A tiny HTTP/1.1 server answering each request from `reply`.
    async fn serve(
        reply: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    ) -> (SocketAddr, Arc<AtomicU64>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let reply = reply.clone();
                h.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let _ = s.write_all(&reply(&req)).await;
                });
            }
        });
        (addr, hits)
    }

    fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v
    }

    fn loader(allow_loopback: bool) -> AudioLoader {
        AudioLoader::new(FetchRules {
            allow: if allow_loopback {
                vec!["127.0.0.0/8".parse().expect("net")]
            } else {
                vec![]
            },
            total_timeout: Duration::from_millis(800),
            max_bytes: 100_000,
            fresh_for: Duration::ZERO,
            ..FetchRules::default()
        })
        .expect("loader")
    }

    #[tokio::test]
    async fn fetch_cache_and_revalidate() {
        let file = wav16(8000, 1, &vec![vec![1000i16]; 800]);
        let body = file.clone();
        let (addr, hits) = serve(move |req| {
            if req.contains("/a.wav") {
                if req.to_ascii_lowercase().contains("if-none-match: \"v1\"") {
                    response("304 Not Modified", "ETag: \"v1\"\r\n", b"")
                } else {
                    response("200 OK", "ETag: \"v1\"\r\n", &body)
                }
            } else if req.contains("/big.wav") {
                response("200 OK", "", &vec![0u8; 200_000])
            } else if req.contains("/loop") {
                response("302 Found", "Location: /loop\r\n", b"")
            } else if req.contains("/inside") {
                response("302 Found", "Location: http://10.9.9.9/a.wav\r\n", b"")
            } else {
                response("404 Not Found", "", b"")
            }
        })
        .await;
        let l = loader(true);
        let url = format!("http://{addr}/a.wav");
        let c1 = l.load(&url).await.expect("first load");
        assert_eq!(c1.samples.len(), 800);
        let c2 = l.load(&url).await.expect("revalidated");
        assert!(Arc::ptr_eq(&c1, &c2), "304 keeps the cached clip");
        assert_eq!(hits.load(Ordering::Relaxed), 2);
        let e = l
            .load(&format!("http://{addr}/nope.wav"))
            .await
            .unwrap_err();
        assert!(matches!(e, AudioError::Status(404)), "{e}");
        let e = l.load(&format!("http://{addr}/big.wav")).await.unwrap_err();
        assert!(matches!(e, AudioError::TooLarge(_)), "{e}");
        let e = l.load(&format!("http://{addr}/loop")).await.unwrap_err();
        assert!(matches!(e, AudioError::Fetch(_)), "{e}");
        let e = l.load(&format!("http://{addr}/inside")).await.unwrap_err();
        assert!(
            matches!(&e, AudioError::Fetch(s) if s.contains("refused")),
            "redirect to a private address: {e}"
        );
        assert_eq!(l.failures(), 4);
        // Without the allowance, loopback itself is refused before any request.
        let before = hits.load(Ordering::Relaxed);
        let e = loader(false).load(&url).await.unwrap_err();
        assert!(matches!(e, AudioError::Refused(_)), "{e}");
        let e = loader(false)
            .load(&format!("http://localhost:{}/a.wav", addr.port()))
            .await
            .unwrap_err();
        assert!(matches!(e, AudioError::Fetch(_)), "{e}");
        assert_eq!(hits.load(Ordering::Relaxed), before);
        let e = l.load("ftp://example.com/a.wav").await.unwrap_err();
        assert!(matches!(e, AudioError::Unsupported(_)), "{e}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let t0 = Instant::now();
        let e = loader(true)
            .load(&format!("http://{addr}/slow.wav"))
            .await
            .unwrap_err();
        assert!(matches!(e, AudioError::Fetch(_)), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(3));
    }
}

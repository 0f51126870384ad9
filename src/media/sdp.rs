//! SDP offer/answer (RFC 3264) for anchored G.711 calls: a small typed view
//! over the `sdp` crate (which keeps every m-line, known or not) and the
//! builders for the SDP we send on each leg.

use std::fmt::Write as _;
use std::io::Cursor;
use std::net::IpAddr;

use sdp::SessionDescription;

use super::MediaError;
use super::g711::Codec;

/// What a payload type in an audio m-line means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PCMU or PCMA at 8000 Hz.
    G711(Codec),
    /// RFC 4733 telephone-event at the given clock rate.
    TelephoneEvent(u32),
    /// Anything else (not relayed).
    Other,
}

/// Media direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    /// The direction an answer takes for this offered direction (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// One `m=audio` line over RTP/AVP, typed.
#[derive(Debug, Clone)]
pub struct AudioLine {
    /// Position among the m-lines of the description.
    pub index: usize,
    /// RTP port (0 = rejected/disabled).
    pub port: u16,
    /// Connection address (media-level `c=`, else session-level).
    pub addr: Option<IpAddr>,
    /// Payload types in preference order, with their meaning.
    pub formats: Vec<(u8, Format)>,
    /// `a=fmtp` of the telephone-event payload, when given.
    pub te_fmtp: Option<String>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// Direction.
    pub direction: Direction,
    /// `a=rtcp` port (RFC 3605), when given.
    pub rtcp_port: Option<u16>,
}

impl AudioLine {
    /// Everything we can take on a leg that sent no offer (RFC 3261
    /// §13.2.1 delayed offer): PCMU, PCMA and telephone-event/8000 on 101.
    pub fn everything() -> AudioLine {
        AudioLine {
            index: 0,
            port: 0,
            addr: None,
            formats: vec![
                (0, Format::G711(Codec::Pcmu)),
                (8, Format::G711(Codec::Pcma)),
                (101, Format::TelephoneEvent(8000)),
            ],
            te_fmtp: None,
            ptime: None,
            direction: Direction::SendRecv,
            rtcp_port: None,
        }
    }

    /// The G.711 payload types, in preference order.
    pub fn g711(&self) -> Vec<(u8, Codec)> {
        self.formats
            .iter()
            .filter_map(|(pt, f)| match f {
                Format::G711(c) => Some((*pt, *c)),
                _ => None,
            })
            .collect()
    }
    /// The telephone-event payload type at 8000 Hz (RFC 4733 §2.5.1.1).
    pub fn te_pt(&self) -> Option<u8> {
        self.formats
            .iter()
            .find(|(_, f)| *f == Format::TelephoneEvent(8000))
            .map(|(pt, _)| *pt)
    }
    /// Remote RTP address, when the line has a usable one (a `0.0.0.0`
    /// hold address, RFC 3264 §8.4, is not usable).
    pub fn rtp_target(&self) -> Option<std::net::SocketAddr> {
        let ip = self.addr.filter(|ip| !ip.is_unspecified())?;
        (self.port != 0).then(|| std::net::SocketAddr::new(ip, self.port))
    }
    /// Remote RTCP address: `a=rtcp` or RTP port + 1 (RFC 3550 §11).
    pub fn rtcp_target(&self) -> Option<std::net::SocketAddr> {
        let rtp = self.rtp_target()?;
        let port = self.rtcp_port.unwrap_or(rtp.port().checked_add(1)?);
        Some(std::net::SocketAddr::new(rtp.ip(), port))
    }
}

/// A parsed session description with its first usable audio line.
#[derive(Debug, Clone)]
pub struct ParsedSdp {
    /// The full description (every m-line kept).
    pub desc: SessionDescription,
    /// The first `m=audio` line with a non-zero port over RTP/AVP.
    pub audio: Option<AudioLine>,
}

fn parse_ip(c: Option<&sdp::description::common::ConnectionInformation>) -> Option<IpAddr> {
    c.and_then(|c| c.address.as_ref())
        .and_then(|a| a.address.split('/').next().and_then(|s| s.parse().ok()))
}

fn static_format(pt: u8) -> Format {
    match pt {
        0 => Format::G711(Codec::Pcmu),
        8 => Format::G711(Codec::Pcma),
        _ => Format::Other,
    }
}

fn rtpmap_format(value: &str) -> Option<(u8, Format)> {
    let (pt, enc) = value.trim().split_once(' ')?;
    let pt: u8 = pt.parse().ok()?;
    let mut parts = enc.trim().split('/');
    let name = parts.next()?.to_ascii_lowercase();
    let clock: u32 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let f = match (name.as_str(), clock) {
        ("pcmu", 8000) => Format::G711(Codec::Pcmu),
        ("pcma", 8000) => Format::G711(Codec::Pcma),
        ("telephone-event", c) => Format::TelephoneEvent(c),
        _ => Format::Other,
    };
    Some((pt, f))
}

/// Parses an SDP body.
pub fn parse(body: &str) -> Result<ParsedSdp, MediaError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(body.as_bytes()))
        .map_err(|e| MediaError::Sdp(e.to_string()))?;
    let session_ip = parse_ip(desc.connection_information.as_ref());
    let mut audio = None;
    for (index, m) in desc.media_descriptions.iter().enumerate() {
        let name = &m.media_name;
        let is_avp = name.protos.join("/").eq_ignore_ascii_case("RTP/AVP");
        if !name.media.eq_ignore_ascii_case("audio") || !is_avp || name.port.value <= 0 {
            continue;
        }
        let port =
            u16::try_from(name.port.value).map_err(|_| MediaError::Sdp("bad port".into()))?;
        let mut formats: Vec<(u8, Format)> = name
            .formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .map(|pt| (pt, static_format(pt)))
            .collect();
        let mut te_fmtp = None;
        let mut ptime = None;
        let mut direction = Direction::SendRecv;
        let mut rtcp_port = None;
        for a in &m.attributes {
            let val = a.value.as_deref().unwrap_or("");
            match a.key.to_ascii_lowercase().as_str() {
                "rtpmap" => {
                    let parsed = rtpmap_format(val);
                    if let Some((slot, (_, f))) = parsed.and_then(|(pt, f)| {
                        formats
                            .iter_mut()
                            .find(|(p, _)| *p == pt)
                            .zip(Some((pt, f)))
                    }) {
                        slot.1 = f;
                    }
                }
                "ptime" => ptime = val.trim().parse().ok(),
                "sendrecv" => direction = Direction::SendRecv,
                "sendonly" => direction = Direction::SendOnly,
                "recvonly" => direction = Direction::RecvOnly,
                "inactive" => direction = Direction::Inactive,
                "rtcp" => rtcp_port = val.split_whitespace().next().and_then(|p| p.parse().ok()),
                _ => {}
            }
        }
        for a in &m.attributes {
            if a.key.eq_ignore_ascii_case("fmtp") {
                let val = a.value.as_deref().unwrap_or("");
                if let Some((pt, params)) = val.split_once(' ') {
                    let is_te = pt.parse::<u8>().ok().is_some_and(|pt| {
                        formats
                            .iter()
                            .any(|(p, f)| *p == pt && *f == Format::TelephoneEvent(8000))
                    });
                    if is_te {
                        te_fmtp = Some(params.trim().to_string());
                    }
                }
            }
        }
        audio = Some(AudioLine {
            index,
            port,
            addr: parse_ip(m.connection_information.as_ref()).or(session_ip),
            formats,
            te_fmtp,
            ptime,
            direction,
            rtcp_port,
        });
        break;
    }
    Ok(ParsedSdp { desc, audio })
}

/// What one leg negotiated: its G.711 law and payload numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegCodec {
    /// The law this leg sends and receives.
    pub codec: Codec,
    /// Its payload type number on this leg.
    pub pt: u8,
    /// telephone-event payload type on this leg, when negotiated.
    pub te_pt: Option<u8>,
}

/// Our origin line state for one leg (RFC 4566 §5.2): the version goes up
/// only when the description changes.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// Session id.
    pub id: u64,
    /// Session version.
    pub version: u64,
}

impl Origin {
    /// A new origin with a random id.
    pub fn new() -> Self {
        let id = u64::from(rand::random::<u32>()) + 1;
        Origin { id, version: id }
    }
}

impl Default for Origin {
    fn default() -> Self {
        Self::new()
    }
}

fn ip_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

fn session_head(out: &mut String, origin: Origin, ip: IpAddr) {
    let t = ip_type(ip);
    let _ = write!(
        out,
        "v=0\r\no=Mediator {} {} IN {t} {ip}\r\ns=Mediator\r\nc=IN {t} {ip}\r\nt=0 0\r\n",
        origin.id, origin.version
    );
}

fn audio_lines(
    out: &mut String,
    port: u16,
    fmts: &[(u8, &str)],
    te_fmtp: Option<&str>,
    te_pt: Option<u8>,
    ptime: Option<u32>,
    dir: Direction,
) {
    let pts: Vec<String> = fmts.iter().map(|(pt, _)| pt.to_string()).collect();
    let _ = write!(out, "m=audio {port} RTP/AVP {}\r\n", pts.join(" "));
    for (pt, name) in fmts {
        let _ = write!(out, "a=rtpmap:{pt} {name}/8000\r\n");
    }
    if let Some(te) = te_pt {
        let _ = write!(out, "a=fmtp:{te} {}\r\n", te_fmtp.unwrap_or("0-16"));
    }
    if let Some(p) = ptime {
        let _ = write!(out, "a=ptime:{p}\r\n");
    }
    let _ = write!(out, "a={}\r\n", dir.as_str());
}

/// Our offer to the B leg for A's offered audio line: A's G.711 laws in A's
/// order, then the other law (we transcode), then telephone-event when A
/// offered it, keeping A's payload number for it. Errors with
/// [`MediaError::NoCommonCodec`] when A offered no G.711.
pub fn offer_for_b(
    a: &AudioLine,
    origin: Origin,
    ip: IpAddr,
    port: u16,
) -> Result<String, MediaError> {
    let mut laws: Vec<Codec> = Vec::new();
    for (_, c) in a.g711() {
        if !laws.contains(&c) {
            laws.push(c);
        }
    }
    if laws.is_empty() {
        return Err(MediaError::NoCommonCodec);
    }
    for c in [Codec::Pcmu, Codec::Pcma] {
        if !laws.contains(&c) {
            laws.push(c);
        }
    }
    let te = a
        .te_pt()
        .map(|pt| if pt == 0 || pt == 8 { 101 } else { pt });
    let mut fmts: Vec<(u8, &str)> = laws.iter().map(|c| (c.static_pt(), c.name())).collect();
    if let Some(te) = te {
        fmts.push((te, "telephone-event"));
    }
    let dir = a.direction;
    let mut out = String::new();
    session_head(&mut out, origin, ip);
    audio_lines(
        &mut out,
        port,
        &fmts,
        a.te_fmtp.as_deref(),
        te,
        a.ptime,
        dir,
    );
    Ok(out)
}

/// Our offer to an A leg that sent no offer, made once B has answered: B's
/// law first (no transcoding when A takes it), then the other law, and
/// telephone-event on 101 when B has it.
pub fn offer_for_a(b: &LegCodec, origin: Origin, ip: IpAddr, port: u16) -> String {
    let other = match b.codec {
        Codec::Pcmu => Codec::Pcma,
        Codec::Pcma => Codec::Pcmu,
    };
    let mut fmts: Vec<(u8, &str)> = [b.codec, other]
        .iter()
        .map(|c| (c.static_pt(), c.name()))
        .collect();
    let te = b.te_pt.map(|_| 101);
    if let Some(te) = te {
        fmts.push((te, "telephone-event"));
    }
    let mut out = String::new();
    session_head(&mut out, origin, ip);
    audio_lines(&mut out, port, &fmts, None, te, None, Direction::SendRecv);
    out
}

/// What B's answer chose: its first G.711 payload and its telephone-event.
pub fn answer_codec(b: &AudioLine) -> Result<LegCodec, MediaError> {
    let (pt, codec) = *b.g711().first().ok_or(MediaError::NoCommonCodec)?;
    Ok(LegCodec {
        codec,
        pt,
        te_pt: b.te_pt(),
    })
}

/// A's side of the bridge: the law B chose when A offered it (no
/// transcoding), else A's first G.711; telephone-event only when both legs
/// have it. Payload numbers are A's own.
pub fn choose_for_a(a: &AudioLine, b: &LegCodec) -> Result<LegCodec, MediaError> {
    let offered = a.g711();
    let (pt, codec) = offered
        .iter()
        .find(|(_, c)| *c == b.codec)
        .or_else(|| offered.first())
        .copied()
        .ok_or(MediaError::NoCommonCodec)?;
    let te_pt = if b.te_pt.is_some() { a.te_pt() } else { None };
    Ok(LegCodec { codec, pt, te_pt })
}

/// The origin of a description as (session id, session version) (RFC 4566
/// §5.2): an offer whose origin equals the last one seen from a party
/// changes nothing (RFC 3264 §8), such as a session refresh.
pub fn origin_of(p: &ParsedSdp) -> (u64, u64) {
    (p.desc.origin.session_id, p.desc.origin.session_version)
}

/// The direction a party asks for with this audio line, reading a `0.0.0.0`
/// connection address (the hold of RFC 2543, RFC 3264 §8.4) as "do not send
/// to me": sendrecv becomes sendonly and recvonly becomes inactive.
pub fn effective_direction(a: &AudioLine) -> Direction {
    let held = a.addr.is_some_and(|ip| ip.is_unspecified());
    match (held, a.direction) {
        (false, d) => d,
        (true, Direction::SendRecv | Direction::SendOnly) => Direction::SendOnly,
        (true, Direction::RecvOnly | Direction::Inactive) => Direction::Inactive,
    }
}

/// Our offer in a re-INVITE or UPDATE to a leg whose codec is already
/// negotiated (RFC 3264 §8): that law and its telephone-event, our address
/// and port for the leg, and `dir` (the direction the other party asked
/// for, relayed).
pub fn reoffer(codec: &LegCodec, origin: Origin, ip: IpAddr, port: u16, dir: Direction) -> String {
    let mut fmts = vec![(codec.pt, codec.codec.name())];
    if let Some(te) = codec.te_pt {
        fmts.push((te, "telephone-event"));
    }
    let mut out = String::new();
    session_head(&mut out, origin, ip);
    audio_lines(&mut out, port, &fmts, None, codec.te_pt, None, dir);
    out
}

/// Our answer to a leg's offer (RFC 3264 §6): every offered m-line is kept, in
/// order; the audio line we bridge carries our address and port and the
/// chosen payloads, every other line is rejected with port 0.
pub fn answer_for(
    offer: &ParsedSdp,
    a: &AudioLine,
    chosen: &LegCodec,
    origin: Origin,
    ip: IpAddr,
    port: u16,
) -> String {
    answer_with_direction(offer, a, chosen, origin, ip, port, a.direction.answer())
}

/// [`answer_for`] with the audio line's direction given (a relayed offer is
/// answered with the direction the other party answered).
pub fn answer_with_direction(
    offer: &ParsedSdp,
    a: &AudioLine,
    chosen: &LegCodec,
    origin: Origin,
    ip: IpAddr,
    port: u16,
    dir: Direction,
) -> String {
    let mut out = String::new();
    session_head(&mut out, origin, ip);
    for (i, m) in offer.desc.media_descriptions.iter().enumerate() {
        if i == a.index {
            let mut fmts = vec![(chosen.pt, chosen.codec.name())];
            if let Some(te) = chosen.te_pt {
                fmts.push((te, "telephone-event"));
            }
            audio_lines(
                &mut out,
                port,
                &fmts,
                a.te_fmtp.as_deref(),
                chosen.te_pt,
                a.ptime,
                dir,
            );
        } else {
            let n = &m.media_name;
            let formats = if n.formats.is_empty() {
                "0".to_string()
            } else {
                n.formats.join(" ")
            };
            let _ = write!(
                out,
                "m={} 0 {} {}\r\n",
                n.media,
                n.protos.join("/"),
                formats
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=a 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 18 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\na=ptime:30\r\n\
m=video 5000 RTP/AVP 99\r\na=rtpmap:99 H264/90000\r\nm=image 6000 udptl t38\r\n";

    #[test]
    fn parses_static_and_dynamic_payloads() {
        let p = parse(OFFER).expect("parse");
        let a = p.audio.expect("audio");
        assert_eq!(a.g711(), vec![(8, Codec::Pcma), (0, Codec::Pcmu)]);
        assert_eq!(a.te_pt(), Some(96));
        assert_eq!(a.te_fmtp.as_deref(), Some("0-15"));
        assert_eq!(a.ptime, Some(30));
        assert_eq!(
            a.rtp_target(),
            Some("192.0.2.5:4000".parse().expect("addr"))
        );
        assert_eq!(
            a.rtcp_target(),
            Some("192.0.2.5:4001".parse().expect("addr"))
        );
    }

    #[test]
    fn answer_keeps_every_m_line() {
        let p = parse(OFFER).expect("parse");
        let a = p.audio.clone().expect("audio");
        let b = LegCodec {
            codec: Codec::Pcmu,
            pt: 0,
            te_pt: Some(101),
        };
        let chosen = choose_for_a(&a, &b).expect("codec");
        assert_eq!(
            chosen,
            LegCodec {
                codec: Codec::Pcmu,
                pt: 0,
                te_pt: Some(96)
            }
        );
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let ans = answer_for(&p, &a, &chosen, Origin::new(), ip, 20000);
        let again = parse(&ans).expect("answer parses");
        assert_eq!(again.desc.media_descriptions.len(), 3);
        assert!(ans.contains("m=audio 20000 RTP/AVP 0 96\r\n"));
        assert!(ans.contains("m=video 0 RTP/AVP 99\r\n"));
        assert!(ans.contains("m=image 0 udptl t38\r\n"));
        assert!(ans.contains("a=fmtp:96 0-15\r\n"));
        assert!(!ans.contains("192.0.2.5"));
    }

    #[test]
    fn offer_to_b_adds_other_law_and_keeps_te_number() {
        let p = parse(OFFER).expect("parse");
        let a = p.audio.expect("audio");
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let o = offer_for_b(&a, Origin::new(), ip, 20002).expect("offer");
        assert!(o.contains("m=audio 20002 RTP/AVP 8 0 96\r\n"), "{o}");
        assert!(o.contains("c=IN IP4 127.0.0.1\r\n"));
    }

    #[test]
    fn no_g711_is_no_common_codec() {
        let sdp = "v=0\r\no=a 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n";
        let a = parse(sdp).expect("parse").audio.expect("audio");
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(matches!(
            offer_for_b(&a, Origin::new(), ip, 1),
            Err(MediaError::NoCommonCodec)
        ));
    }

    #[test]
    fn lower_case_rtpmap_and_direction() {
        let sdp = "v=0\r\no=a 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 pcmu/8000\r\na=sendonly\r\n";
        let a = parse(sdp).expect("parse").audio.expect("audio");
        assert_eq!(a.g711(), vec![(0, Codec::Pcmu)]);
        assert_eq!(a.direction.answer(), Direction::RecvOnly);
        assert_eq!(a.rtp_target(), None);
    }
}

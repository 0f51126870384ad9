//! Reading and building SIP messages on top of rsipstack's types.

use std::net::IpAddr;

use rsipstack::sip::{
    Header, Request, Response, StatusCode, headers::untyped::ToTypedHeader, prelude::HeadersExt,
};
use rsipstack::transport::SipConnection;

use super::config::Proto;

/// Every value of every header named `name` (case-insensitive; rsipstack
/// maps compact forms such as `f:` to their long names when parsing), in
/// message order.
pub fn header_values<M: HeadersExt>(msg: &M, name: &str) -> Vec<String> {
    msg.headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().trim().to_string())
        .collect()
}

/// The first value of the header `name`.
pub fn header_value<M: HeadersExt>(msg: &M, name: &str) -> Option<String> {
    header_values(msg, name).into_iter().next()
}

/// The source IP of a received request. rsipstack writes `received=` into
/// the top Via whenever the packet's source differs from the sent-by host
/// (RFC 3261 §18.2.1) after removing any `received` the sender put there, so
/// `received` (or else the sent-by host) is the real source.
pub fn source_ip(req: &Request) -> Option<IpAddr> {
    let via = req.via_header().ok()?;
    let (_, hp) = SipConnection::parse_target_from_via(via).ok()?;
    hp.host.to_string().trim_matches(['[', ']']).parse().ok()
}

/// The Max-Forwards value (RFC 3261 §8.1.1.6, §20.22); `None` when absent
/// or unparseable.
pub fn max_forwards(req: &Request) -> Option<u32> {
    header_value(req, "Max-Forwards").and_then(|v| v.parse::<u32>().ok())
}

/// The tag of the To header of `msg` (`None`: no To, or no tag).
pub fn to_tag<M: HeadersExt>(msg: &M) -> Option<String> {
    msg.to_header().ok().and_then(|h| tag_of(h.value()))
}

/// The tag parameter of a From or To value.
pub fn tag_of(value: &str) -> Option<String> {
    // Parameters after the closing '>' (or after the addr-spec) are header params.
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("tag")
            .then(|| v.trim().to_string())
    })
}

/// The Call-ID of a message.
pub fn call_id<M: HeadersExt>(msg: &M) -> Option<String> {
    msg.call_id_header()
        .ok()
        .map(|c| c.value().trim().to_string())
}

/// The CSeq number of a message.
pub fn cseq_number<M: HeadersExt>(msg: &M) -> Option<u32> {
    msg.cseq_header().ok().and_then(|c| c.seq().ok())
}

/// The body types we read, for `Accept` in a 415 (RFC 3261 §8.2.3,
/// §20.1): SDP, alone or as a part of `multipart/mixed` (RFC 5621).
pub const ACCEPT: &str = "application/sdp, multipart/mixed";

/// The media type of a Content-Type value (`type/subtype`, parameters
/// dropped), lowercased.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// One part of a multipart body (RFC 2046 §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPart<'a> {
    /// The part's media type, lowercased, parameters dropped
    /// (`text/plain` when the part has no Content-Type, RFC 2046 §5.1).
    pub media_type: String,
    /// The part's `Content-Disposition` value, if any (RFC 3261 §20.11).
    pub disposition: Option<String>,
    /// The part's octets, after its headers and blank line, before the
    /// CRLF of the next boundary delimiter.
    pub body: &'a [u8],
}

impl BodyPart<'_> {
    /// Whether the part says `handling=required` in its Content-Disposition
    /// (RFC 3261 §20.11, RFC 5621 §9): a UA that does not understand it
    /// must reject the message with 415.
    pub fn handling_required(&self) -> bool {
        self.disposition.as_deref().is_some_and(|d| {
            d.split(';').skip(1).any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("handling")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("required")
                })
            })
        })
    }
}

/// The `boundary` parameter of a multipart Content-Type (RFC 2046 §5.1.1),
/// unquoted; `None` when absent or empty.
fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty() && v.len() <= 70).then(|| v.to_string())
    })
}

/// Position of `needle` in `hay` from `from` on.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() || needle.is_empty() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Splits a `multipart/*` body (RFC 2046 §5.1.1, as SIP uses it: RFC 5621)
/// into its parts. `content_type` is the message's Content-Type value,
/// which names the boundary. Binary parts (ISUP) are kept as they are:
/// only the boundary delimiters (`CRLF--boundary`) are looked for. The
/// preamble and epilogue are ignored; a missing close delimiter ends the
/// last part at the end of the body; bare LF line ends are accepted.
/// `None` when there is no boundary or no delimiter in the body.
pub fn multipart_parts<'a>(content_type: &str, body: &'a [u8]) -> Option<Vec<BodyPart<'a>>> {
    let boundary = boundary_of(content_type)?;
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    // The first delimiter: at the start, or after a line end.
    let mut at = if body.starts_with(delim) {
        0
    } else {
        find(body, &[b"\n", delim].concat(), 0)? + 1
    };
    let mut parts = Vec::new();
    loop {
        let after = at + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            break; // close delimiter
        }
        // Transport padding, then the line end of the delimiter line.
        let Some(eol) = find(body, b"\n", after) else {
            break;
        };
        let start = eol + 1;
        let next = find(body, &[b"\n", delim].concat(), start);
        let end = match next {
            Some(n) if n > start && body[n - 1] == b'\r' => n - 1,
            Some(n) => n,
            None => body.len(),
        };
        parts.push(body_part(&body[start..end.max(start)]));
        match next {
            Some(n) => at = n + 1,
            None => break,
        }
    }
    (!parts.is_empty()).then_some(parts)
}

/// One part's headers and body (RFC 2045 §3; a part that starts with a
/// blank line has no headers).
fn body_part(raw: &[u8]) -> BodyPart<'_> {
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], &raw[2..])
    } else if raw.starts_with(b"\n") {
        (&raw[..0], &raw[1..])
    } else if let Some(i) = find(raw, b"\r\n\r\n", 0) {
        (&raw[..i], &raw[i + 4..])
    } else if let Some(i) = find(raw, b"\n\n", 0) {
        (&raw[..i], &raw[i + 2..])
    } else {
        (raw, &raw[raw.len()..])
    };
    let head = String::from_utf8_lossy(head);
    let mut media = None;
    let mut disposition = None;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-type") {
            media = Some(media_type(value));
        } else if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value.trim().to_string());
        }
    }
    BodyPart {
        media_type: media.unwrap_or_else(|| "text/plain".into()),
        disposition,
        body,
    }
}

/// The SDP of a message: its body when it carries `application/sdp` (or no
/// Content-Type with a non-empty body, which trunks sometimes send), or the
/// first `application/sdp` part of a `multipart/mixed` body (SIP-I/SIP-T:
/// ISUP and SDP, RFC 5621, ITU-T Q.1912.5, RFC 3372).
pub fn sdp_body<M: HeadersExt>(msg: &M, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let ctype = header_value(msg, "Content-Type").unwrap_or_default();
    let media = media_type(&ctype);
    let sdp = if media.is_empty() || media == "application/sdp" {
        body
    } else if media == "multipart/mixed" {
        multipart_parts(&ctype, body)?
            .into_iter()
            .find(|p| p.media_type == "application/sdp")?
            .body
    } else {
        return None;
    };
    std::str::from_utf8(sdp).ok().map(str::to_string)
}

/// Whether a request asks for identity privacy (`Privacy: id`, RFC 3323 §4.2,
/// RFC 3325 §7).
pub fn privacy_id(req: &Request) -> bool {
    header_values(req, "Privacy").iter().any(|v| {
        v.split([';', ','])
            .any(|t| t.trim().eq_ignore_ascii_case("id"))
    })
}

/// Why a parsed request is malformed in a way RFC 3261 answers with 400
/// (RFC 4475 §3.1.2, §3.3.8, §3.3.9); `None` when it is not. rsipstack's
/// parser is lenient: it keeps the first of two Call-IDs, reads a negative
/// Content-Length as 0 and a body cut short by the datagram as whole. The
/// checks:
///
/// * a header that takes one value (Call-ID, From, To, CSeq, Max-Forwards,
///   Content-Length, Content-Type) appears twice (§7.3.1, §20);
/// * the CSeq method is not the request's method (§8.1.1.5);
/// * Content-Length is not a number, or more than the octets that came
///   (§18.3: over UDP a request SHOULD get 400; over TCP the stream codec
///   waits for them);
/// * a From, To or Contact value has an unterminated quoted string;
/// * a Via value or Via parameter is empty (`;;`, `,,`).
pub fn request_problem(req: &Request) -> Option<&'static str> {
    const SINGLE: [&str; 7] = [
        "Call-ID",
        "From",
        "To",
        "CSeq",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
    ];
    if SINGLE.iter().any(|n| header_values(req, n).len() > 1) {
        return Some("a single-value header appears twice");
    }
    if let Ok(cseq) = req.cseq_header()
        && let Ok(m) = cseq.method()
        && m != req.method
    {
        return Some("CSeq method differs from the Request-Line");
    }
    if let Some(cl) = header_value(req, "Content-Length") {
        match cl.trim().parse::<usize>() {
            Ok(n) if n <= req.body.len() => {}
            _ => return Some("bad Content-Length"),
        }
    }
    for name in ["From", "To", "Contact"] {
        if header_values(req, name).iter().any(|v| !quotes_balanced(v)) {
            return Some("unterminated quoted string");
        }
    }
    let bad_via = header_values(req, "Via").iter().any(|v| {
        v.split(',').any(|one| {
            let one = one.trim();
            one.is_empty() || one.split(';').any(|p| p.trim().is_empty())
        })
    });
    if bad_via {
        return Some("empty Via value or parameter");
    }
    None
}

/// Whether every `"` opens and closes a quoted string (a `\` escapes the
/// next character inside one, RFC 3261 §25.1 quoted-pair).
fn quotes_balanced(v: &str) -> bool {
    let (mut inside, mut escaped) = (false, false);
    for c in v.chars() {
        if escaped {
            escaped = false;
        } else if inside && c == '\\' {
            escaped = true;
        } else if c == '"' {
            inside = !inside;
        }
    }
    !inside
}

/// The option tags of every Require header of a request (RFC 3261
/// §20.32), in order. A tag not in `call::legs::SUPPORTED` means 420
/// (§8.2.2.3).
pub fn required_options(req: &Request) -> Vec<String> {
    header_values(req, "Require")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a Request-URI has a scheme we serve (`sip`, `sips`, `tel`);
/// else 416 (RFC 3261 §8.2.2.1).
pub fn scheme_supported(uri: &str) -> bool {
    uri.split(':').next().is_some_and(|s| {
        ["sip", "sips", "tel"]
            .iter()
            .any(|x| s.trim().eq_ignore_ascii_case(x))
    })
}

/// Whether a request carries a body we cannot read. The answer is 415
/// with `Accept:` [`ACCEPT`] (RFC 3261 §8.2.3). Readable: no body,
/// `application/sdp`, a body without a Content-Type (read as SDP, as trunks
/// sometimes send it), and `multipart/mixed` with an `application/sdp`
/// part whose other parts (ISUP, QSIG, ...) are ignored unless one says
/// `handling=required` (RFC 5621 §9: we do not understand it, so 415).
pub fn unsupported_body<M: HeadersExt>(msg: &M, body: &[u8]) -> bool {
    if body.is_empty() {
        return false;
    }
    let ctype = header_value(msg, "Content-Type").unwrap_or_default();
    let media = media_type(&ctype);
    if media.is_empty() || media == "application/sdp" {
        return false;
    }
    if media != "multipart/mixed" {
        return true;
    }
    let Some(parts) = multipart_parts(&ctype, body) else {
        return true;
    };
    let has_sdp = parts.iter().any(|p| p.media_type == "application/sdp");
    let required_other = parts
        .iter()
        .any(|p| p.media_type != "application/sdp" && p.handling_required());
    !has_sdp || required_other
}

/// Whether the Accept headers of a request admit `application/sdp`, the
/// only body we answer with (RFC 3261 §20.1: no Accept means
/// `application/sdp`); else the answer is 406 (§21.4.7). Ranges
/// (`application/*`, `*/*`) admit it; a range with `q=0` does not.
pub fn accepts_sdp(req: &Request) -> bool {
    let accept = header_values(req, "Accept");
    if accept.is_empty() {
        return true;
    }
    let ranges: Vec<&str> = accept
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    // An Accept header with an empty value accepts no body at all; we
    // answer an INVITE only with SDP.
    ranges.iter().any(|r| {
        let mut parts = r.split(';');
        let media = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("q")
                    && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        !refused
            && ["application/sdp", "application/*", "*/*"]
                .iter()
                .any(|m| media.eq_ignore_ascii_case(m))
    })
}

/// The Contact URI of a message (first value).
pub fn contact_uri<M: HeadersExt>(msg: &M) -> Option<String> {
    let c = msg.contact_header().ok()?;
    let v = c.value().to_string();
    super::number::split_values(&v)
        .first()
        .and_then(|v| super::number::value_uri(v))
        .map(str::to_string)
}

/// The Record-Route values of a message, in order, one URI (name-addr) each.
pub fn record_route<M: HeadersExt>(msg: &M) -> Vec<String> {
    header_values(msg, "Record-Route")
        .iter()
        .flat_map(|v| {
            super::number::split_values(v)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Our Via value for a new client transaction (RFC 3261 §8.1.1.7, with
/// `rport` of RFC 3581).
pub fn our_via(proto: Proto, host: &str, port: u16) -> String {
    let branch = rsipstack::transaction::make_via_branch();
    format!(
        "SIP/2.0/{} {}:{}{};rport",
        proto.via_token(),
        host,
        port,
        branch
    )
}

/// A fresh tag (RFC 3261 §19.3).
pub fn new_tag() -> String {
    rsipstack::transaction::make_tag().to_string()
}

/// A fresh Call-ID that reveals nothing about the other leg.
pub fn new_call_id(host: &str) -> String {
    format!("{}@{}", uuid::Uuid::new_v4().simple(), host)
}

/// A header that strips CR and LF from a configured value, so that values
/// from the API can never inject header lines.
pub fn safe_header(name: &str, value: &str) -> Option<Header> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !name_ok {
        return None;
    }
    let v: String = value.chars().filter(|c| !c.is_control()).collect();
    Some(Header::Other(name.to_string(), v.trim().to_string()))
}

/// Replaces (or adds) the To header of a response with `to`.
pub fn set_to(resp: &mut Response, to: &str) {
    resp.headers.retain(|h| !matches!(h, Header::To(_)));
    resp.headers.push(Header::To(to.into()));
}

/// The To value of the request with our tag appended (for every response
/// we send on a leg, RFC 3261 §8.2.6.2).
pub fn to_with_tag(req: &Request, tag: &str) -> String {
    let to = req
        .to_header()
        .map(|t| t.value().to_string())
        .unwrap_or_default();
    if tag_of(&to).is_some() {
        to
    } else {
        format!("{to};tag={tag}")
    }
}

/// The status class of a response.
pub fn code_of(resp: &Response) -> u16 {
    u16::from(resp.status_code.clone())
}

/// A [`StatusCode`] from a number.
pub fn status(code: u16) -> StatusCode {
    StatusCode::from(code)
}

/// The Via transport of a request (`UDP`/`TCP`).
pub fn via_proto(req: &Request) -> Proto {
    let tcp = req
        .via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .is_some_and(|v| v.transport == rsipstack::sip::Transport::Tcp);
    if tcp { Proto::Tcp } else { Proto::Udp }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag_of("<sip:a@b>;tag=xyz").as_deref(), Some("xyz"));
        assert_eq!(tag_of("\"a;tag=no\" <sip:a@b;tag=no>").as_deref(), None);
        assert_eq!(tag_of("sip:a@b;tag=1").as_deref(), Some("1"));
    }

    #[test]
    fn accept_and_content_type() {
        let req = |extra: &str, body: &str| {
            let text = format!(
                "INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            match rsipstack::sip::SipMessage::try_from(text.as_str()).expect("parses") {
                rsipstack::sip::SipMessage::Request(r) => r,
                _ => unreachable!(),
            }
        };
        assert!(accepts_sdp(&req("", "")));
        assert!(accepts_sdp(&req(
            "Accept: application/sdp, text/plain\r\n",
            ""
        )));
        assert!(accepts_sdp(&req("Accept: */*\r\n", "")));
        assert!(!accepts_sdp(&req("Accept: text/nobodyKnowsThis\r\n", "")));
        assert!(!accepts_sdp(&req("Accept: application/sdp;q=0\r\n", "")));
        let r = req("Content-Type: application/unknownformat\r\n", "<x/>");
        assert!(unsupported_body(&r, r.body()));
        let r = req("Content-Type: Application/SDP; charset=x\r\n", "v=0");
        assert!(!unsupported_body(&r, r.body()));
        let r = req("", "v=0");
        assert!(!unsupported_body(&r, r.body()));
        assert!(scheme_supported("TEL:+1555"));
        assert!(!scheme_supported(
            "nobodyKnowsThisScheme:totallyopaquecontent"
        ));
        assert!(!scheme_supported("soap.beep://192.0.2.103:3002"));
        assert_eq!(
            required_options(&req("Require: a, b\r\nRequire: c\r\n", "")),
            ["a", "b", "c"]
        );
    }

    /// An INVITE body of SIP-I (ITU-T Q.1912.5): an ISUP IAM (binary, with
    /// CR, LF and `--` inside) and the SDP offer.
    const ISUP: &[u8] = b"\x01\x00\x60\x01\x0a\x00\x02\r\n--\x0a\x03\x10\x83\x90\x00";
    fn sipi_body(sdp_headers: &str, isup_disposition: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"preamble\r\n--unique-boundary-1\r\n");
        b.extend_from_slice(sdp_headers.as_bytes());
        b.extend_from_slice(b"\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n");
        b.extend_from_slice(
            b"\r\n--unique-boundary-1\r\nContent-Type: application/ISUP; version=itu-t92+\r\n",
        );
        b.extend_from_slice(isup_disposition.as_bytes());
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(ISUP);
        b.extend_from_slice(b"\r\n--unique-boundary-1--\r\nepilogue");
        b
    }

    #[test]
    fn multipart_sdp_and_isup() {
        let req = |ctype: &str, body: &[u8]| {
            let mut text = format!(
                "INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            text.extend_from_slice(body);
            match rsipstack::sip::SipMessage::try_from(text.as_slice()).expect("parses") {
                rsipstack::sip::SipMessage::Request(r) => r,
                _ => unreachable!(),
            }
        };
        let ct = "multipart/mixed; boundary=\"unique-boundary-1\"";
        let body = sipi_body(
            "Content-Type: application/SDP\r\n",
            "Content-Disposition: signal; handling=optional\r\n",
        );
        let parts = multipart_parts(ct, &body).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].media_type, "application/sdp");
        assert_eq!(parts[1].media_type, "application/isup");
        assert_eq!(parts[1].body, ISUP, "binary part kept whole");
        assert!(!parts[1].handling_required());
        let r = req(ct, &body);
        let sdp = sdp_body(&r, r.body()).expect("the SDP part");
        assert!(
            sdp.starts_with("v=0\r\n") && sdp.ends_with("RTP/AVP 8\r\n"),
            "{sdp:?}"
        );
        assert!(crate::media::sdp::parse(&sdp).is_ok());
        assert!(!unsupported_body(&r, r.body()));
        // An unquoted boundary and no ISUP Content-Disposition.
        let r = req(
            "Multipart/Mixed;boundary=unique-boundary-1",
            &sipi_body("Content-Type: application/sdp\r\n", ""),
        );
        assert!(sdp_body(&r, r.body()).is_some());
        assert!(!unsupported_body(&r, r.body()));
        // No SDP part (a part without Content-Type is text/plain): 415.
        let r = req(ct, &sipi_body("", ""));
        assert_eq!(sdp_body(&r, r.body()), None);
        assert!(unsupported_body(&r, r.body()));
        // ISUP that must be understood (RFC 5621 §9): 415.
        let r = req(
            ct,
            &sipi_body(
                "Content-Type: application/sdp\r\n",
                "Content-Disposition: signal;handling=required\r\n",
            ),
        );
        assert!(unsupported_body(&r, r.body()));
        // No boundary, wrong boundary, other multipart types: 415.
        for (ct, body) in [
            (
                "multipart/mixed",
                sipi_body("Content-Type: application/sdp\r\n", ""),
            ),
            (
                "multipart/mixed; boundary=other",
                sipi_body("Content-Type: application/sdp\r\n", ""),
            ),
            (
                "multipart/related; boundary=unique-boundary-1",
                sipi_body("Content-Type: application/sdp\r\n", ""),
            ),
        ] {
            let r = req(ct, &body);
            assert!(unsupported_body(&r, r.body()), "{ct}");
            assert_eq!(sdp_body(&r, r.body()), None, "{ct}");
        }
        // No close delimiter, bare LF line ends.
        let lf = b"--b\nContent-Type: application/sdp\n\nv=0\n";
        let parts = multipart_parts("multipart/mixed; boundary=b", lf).expect("parts");
        assert_eq!(parts[0].body, b"v=0\n");
        // Hostile: nothing but delimiters, an empty body, junk.
        for junk in [
            &b"--b"[..],
            b"--b--",
            b"",
            b"\n--b\n--b\n--b",
            b"--b\r\n\r\n",
        ] {
            let _ = multipart_parts("multipart/mixed; boundary=b", junk);
        }
    }

    #[test]
    fn malformed_requests() {
        let req = |method: &str, extra: &str, body: &str| {
            let text = format!(
                "{method} sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: \"A \\\"x\\\"\" <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n{extra}\r\n{body}"
            );
            match rsipstack::sip::SipMessage::try_from(text.as_str()).expect("parses") {
                rsipstack::sip::SipMessage::Request(r) => r,
                _ => unreachable!(),
            }
        };
        assert_eq!(
            request_problem(&req("INVITE", "Content-Length: 3\r\n", "v=0")),
            None
        );
        assert_eq!(request_problem(&req("OPTIONS", "", "")), None);
        for (method, extra, body) in [
            ("INVITE", "Call-ID: d\r\n", ""),
            ("INVITE", "Max-Forwards: 70\r\nMax-Forwards: 5\r\n", ""),
            (
                "INVITE",
                "Content-Length: 13\r\nContent-Length: 5\r\n",
                "abcde",
            ),
            ("INVITE", "Content-Length: 9999\r\n", "v=0"),
            ("INVITE", "Content-Length: -999\r\n", ""),
            ("INVITE", "Contact: \"Joe <sip:joe@h>\r\n", ""),
            ("INVITE", "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n", ""),
        ] {
            assert!(
                request_problem(&req(method, extra, body)).is_some(),
                "{extra}"
            );
        }
        let mut mismatch = req("OPTIONS", "", "");
        mismatch.headers.retain(|h| !matches!(h, Header::CSeq(_)));
        mismatch.headers.push(Header::CSeq("8 INVITE".into()));
        assert!(request_problem(&mismatch).is_some());
    }

    #[test]
    fn no_injection() {
        let h = safe_header("X-Foo", "a\r\nVia: evil").expect("header");
        assert_eq!(h.to_string(), "X-Foo: aVia: evil");
        assert!(safe_header("X Foo", "v").is_none());
    }
}

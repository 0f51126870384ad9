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

/// The body when the message carries `application/sdp` (or no Content-Type
/// with a non-empty body, which trunks sometimes send).
pub fn sdp_body<M: HeadersExt>(msg: &M, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let ctype = header_value(msg, "Content-Type").unwrap_or_default();
    if !ctype.is_empty() && !ctype.to_ascii_lowercase().starts_with("application/sdp") {
        return None;
    }
    std::str::from_utf8(body).ok().map(str::to_string)
}

/// Whether a request asks for identity privacy (`Privacy: id`, RFC 3323 §4.2,
/// RFC 3325 §7).
pub fn privacy_id(req: &Request) -> bool {
    header_values(req, "Privacy").iter().any(|v| {
        v.split([';', ','])
            .any(|t| t.trim().eq_ignore_ascii_case("id"))
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
    fn no_injection() {
        let h = safe_header("X-Foo", "a\r\nVia: evil").expect("header");
        assert_eq!(h.to_string(), "X-Foo: aVia: evil");
        assert!(safe_header("X Foo", "v").is_none());
    }
}

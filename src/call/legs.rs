//! Building the messages of each leg: responses to A, the B leg's INVITE
//! and CANCEL, and the dialogs used for BYE.
//!
//! Topology hiding: nothing of A's Via, Contact, Record-Route, Call-ID or
//! tags is copied to the B leg, and nothing of B's to A.

use rsipstack::sip::{Header, Method, Request, Response, Uri, Version, prelude::HeadersExt};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::{SipAddr, SipConnection};

use super::callerid::Presented;
use super::router::CallRoute;
use crate::sip::SipError;
use crate::sip::config::{Proto, Trunk, ValidSipConfig};
use crate::sip::dialog::LegDialog;
use crate::sip::display::name_addr;
use crate::sip::message::{
    contact_uri, header_value, header_values, our_via, record_route, safe_header, set_to, status,
    to_with_tag, via_proto,
};
use crate::sip::number::value_uri;

/// Methods we answer, for `Allow` (RFC 3261 §20.5). Kept in step with
/// [`ALLOWED_METHODS`] (a unit test checks it).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK";

/// The methods of [`ALLOW`], as parsed methods.
pub const ALLOWED_METHODS: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Cancel,
    Method::Bye,
    Method::Options,
    Method::Info,
    Method::Update,
    Method::PRack,
];

/// The `Allow` header of our responses and requests (RFC 3261 §20.5).
pub fn allow_header() -> Header {
    Header::Allow(ALLOW.into())
}

/// How a request with `method` is refused before anything else is looked
/// at (RFC 3261 §8.2.1): `None` for a method we serve; 405 (Method Not
/// Allowed) for a method we know but do not serve here (REGISTER, MESSAGE,
/// SUBSCRIBE, NOTIFY, REFER, PUBLISH); 501 (Not Implemented) for an
/// extension method we do not recognise (§21.5.2, RFC 3261 §25.1
/// `extension-method`). Both responses carry [`allow_header`].
pub fn method_refusal(method: &Method) -> Option<u16> {
    if ALLOWED_METHODS.contains(method) {
        None
    } else if matches!(method, Method::Extension(_)) {
        Some(501)
    } else {
        Some(405)
    }
}

/// The SIP extensions (option tags, RFC 3261 §19.2) we support: listed in
/// `Supported` of our INVITEs, accepted in a peer's `Require`: session
/// timers (RFC 4028) and reliable provisional responses (RFC 3262).
pub const SUPPORTED: &[&str] = &["timer", "100rel"];

/// Our Contact for a leg using `proto` (RFC 3261 §8.1.1.8: reachable, our
/// advertised address, never a bind address).
pub fn our_contact(cfg: &ValidSipConfig, proto: Proto) -> String {
    let port = cfg.port_for(proto).unwrap_or(5060);
    format!(
        "<sip:{}:{};transport={}>",
        cfg.advertised_host,
        port,
        proto.uri_param()
    )
}

/// A response to A's INVITE (or to an in-dialog request from A) with our
/// To tag; 1xx/2xx carry our Contact and the request's Record-Route
/// (RFC 3261 §12.1.1).
pub fn a_response(
    ep: &EndpointInner,
    cfg: &ValidSipConfig,
    req: &Request,
    a_tag: &str,
    code: u16,
    sdp: Option<&str>,
) -> Response {
    let body = sdp.map(|s| s.as_bytes().to_vec());
    let mut resp = ep.make_response(req, status(code), body);
    set_to(&mut resp, &to_with_tag(req, a_tag));
    if (101..300).contains(&code) {
        resp.headers
            .push(Header::Contact(our_contact(cfg, via_proto(req)).into()));
        for rr in record_route(req) {
            resp.headers.push(Header::RecordRoute(rr.into()));
        }
    }
    if sdp.is_some() {
        resp.headers
            .push(Header::ContentType("application/sdp".into()));
    }
    resp.headers.push(allow_header());
    resp
}

/// Parameters of the B leg's INVITE.
pub struct BInvite<'a> {
    /// Route from the store.
    pub route: &'a CallRoute,
    /// Presented identity.
    pub presented: &'a Presented,
    /// Max-Forwards to send (A's value minus one, RFC 7332 §3).
    pub max_forwards: u32,
    /// Our SDP offer to B.
    pub sdp: &'a str,
    /// Fresh Call-ID.
    pub call_id: &'a str,
    /// Fresh From tag.
    pub from_tag: &'a str,
    /// Transport the INVITE is sent over (Via and Contact follow it): the
    /// trunk's, or TCP when [`needs_tcp`] says so (RFC 3261 §18.1.1).
    pub transport: Proto,
}

/// RFC 3261 §18.1.1: a request over 1300 bytes, when the path MTU is
/// unknown, MUST go over a congestion-controlled transport (TCP).
pub const UDP_REQUEST_LIMIT: usize = 1300;

/// Whether `req`, built for the UDP trunk, must go over TCP instead
/// (RFC 3261 §18.1.1): it is over [`UDP_REQUEST_LIMIT`] bytes on the wire
/// (the stack adds `Content-Length` when sending, counted here) and we
/// listen on TCP, so our Via and Contact can name a TCP port.
pub fn needs_tcp(cfg: &ValidSipConfig, req: &Request) -> bool {
    let content_length = format!("Content-Length: {}\r\n", req.body.len()).len();
    cfg.trunk.proto == Proto::Udp
        && cfg.port_for(Proto::Tcp).is_some()
        && req.to_bytes().len() + content_length > UDP_REQUEST_LIMIT
}

/// The trunk's address over TCP, for a request switched to TCP by
/// RFC 3261 §18.1.1 (the Request-URI is left as it is).
pub fn trunk_tcp_addr(cfg: &ValidSipConfig) -> Option<SipAddr> {
    let t = &cfg.trunk;
    let uri = Uri::try_from(format!("sip:{}:{};transport=tcp", t.host, t.port).as_str()).ok()?;
    SipAddr::try_from(&uri).ok()
}

/// The From value (with tag) we present on the B leg.
pub fn b_from(cfg: &ValidSipConfig, p: &Presented, tag: &str) -> String {
    let uri = match &p.from_user {
        Some(user) => format!("sip:{}@{}", user, cfg.advertised_host),
        None => "sip:anonymous@anonymous.invalid".to_string(),
    };
    format!("{};tag={}", name_addr(p.display.as_deref(), &uri), tag)
}

fn trunk_uri(t: &Trunk, user: &str) -> String {
    let transport = match t.proto {
        Proto::Udp => String::new(),
        Proto::Tcp => ";transport=tcp".into(),
    };
    format!("sip:{}@{}:{}{}", user, t.host, t.port, transport)
}

/// Builds the B leg's INVITE to the trunk (RFC 3261 §8.1.1).
pub fn b_invite(cfg: &ValidSipConfig, b: &BInvite<'_>) -> Result<Request, SipError> {
    let t = &cfg.trunk;
    let proto = b.transport;
    let port = cfg.port_for(proto).unwrap_or(5060);
    let ruri = trunk_uri(t, &b.route.destination_did);
    let uri = Uri::try_from(ruri.as_str()).map_err(|e| SipError::Malformed(e.to_string()))?;
    let to = format!("<sip:{}@{}:{}>", b.route.destination_did, t.host, t.port);
    let mut headers: Vec<Header> = vec![
        Header::Via(our_via(proto, &cfg.advertised_host, port).into()),
        Header::MaxForwards(b.max_forwards.to_string().into()),
        Header::From(b_from(cfg, b.presented, b.from_tag).into()),
        Header::To(to.into()),
        Header::CallId(b.call_id.into()),
        Header::CSeq("1 INVITE".into()),
        Header::Contact(our_contact(cfg, proto).into()),
    ];
    if let Some(n) = &b.presented.pai {
        let uri = format!("sip:{}@{}", n, cfg.advertised_host);
        headers.push(Header::PAssertedIdentity(
            name_addr(b.presented.display.as_deref(), &uri).into(),
        ));
    }
    if b.presented.privacy {
        headers.push(Header::Privacy("id".into()));
    }
    headers.push(allow_header());
    headers.push(Header::Supported(SUPPORTED.join(", ").into()));
    // RFC 4028 §7.1: the interval we ask for; the B leg chooses the refresher.
    headers.extend(crate::call::session_timer::invite_headers(
        cfg.timers.session_expires,
        &cfg.timers,
    ));
    headers.push(Header::UserAgent(crate::sip::endpoint::USER_AGENT.into()));
    for (name, value) in &b.route.sip_headers {
        let is_x = name.len() > 2 && name[..2].eq_ignore_ascii_case("X-");
        if let Some(h) = safe_header(name, value).filter(|_| is_x) {
            headers.push(h);
        }
    }
    headers.push(Header::ContentType("application/sdp".into()));
    Ok(Request {
        method: Method::Invite,
        uri,
        headers: headers.into(),
        body: b.sdp.as_bytes().to_vec(),
        version: Version::V2,
    })
}

/// The INVITE that retries `prev` after a final response that asks for it:
/// a 3xx (RFC 3261 §8.1.3.4: `new_ruri` is the Contact tried next), a
/// 401/407 (§22.2: `extra_headers` carry the credentials) or a 422
/// (RFC 4028 §7.4: a larger Session-Expires and Min-SE). It keeps the
/// Call-ID, From (with its tag), To (no tag), body and every other header,
/// raises the CSeq number by one (§8.1.3.5) and gets a new Via branch (a new
/// transaction). Each header in `extra_headers` replaces every header of the
/// same name in `prev`.
pub fn retry_invite(
    prev: &Request,
    new_ruri: Option<Uri>,
    extra_headers: Vec<Header>,
) -> Result<Request, SipError> {
    let seq = cseq_number(prev).ok_or_else(|| SipError::Malformed("INVITE without CSeq".into()))?;
    let mut headers: Vec<Header> = Vec::with_capacity(prev.headers.len() + extra_headers.len());
    let mut via_done = false;
    for h in prev.headers.iter() {
        if extra_headers
            .iter()
            .any(|x| x.name().eq_ignore_ascii_case(h.name()))
        {
            continue;
        }
        match h {
            Header::Via(v) if !via_done => {
                via_done = true;
                headers.push(Header::Via(new_branch(v.value()).into()));
            }
            Header::CSeq(_) => headers.push(Header::CSeq(format!("{} INVITE", seq + 1).into())),
            // Added again by the stack when sending.
            Header::ContentLength(_) => {}
            _ => headers.push(h.clone()),
        }
    }
    headers.extend(extra_headers);
    Ok(Request {
        method: Method::Invite,
        uri: new_ruri.unwrap_or_else(|| prev.uri.clone()),
        headers: headers.into(),
        body: prev.body.clone(),
        version: Version::V2,
    })
}

/// The CSeq number of a message (RFC 3261 §8.1.1.5).
pub fn cseq_number<M: HeadersExt>(msg: &M) -> Option<u32> {
    header_value(msg, "CSeq")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A Via value with its branch replaced by a new one (other parameters kept).
fn new_branch(via: &str) -> String {
    let mut parts = via.split(';');
    let mut out = parts.next().unwrap_or("").trim().to_string();
    for p in parts {
        let p = p.trim();
        if p.is_empty()
            || p.split('=')
                .next()
                .is_some_and(|k| k.trim().eq_ignore_ascii_case("branch"))
        {
            continue;
        }
        out.push(';');
        out.push_str(p);
    }
    out.push_str(&rsipstack::transaction::make_via_branch().to_string());
    out
}

/// The usable Contacts of a 3xx response in the order they should be tried
/// (RFC 3261 §8.1.3.4): highest `q` first (no `q` counts as 1.0), equal `q`
/// in the order listed. Usable: a `sip:` or `sips:` URI that parses; its
/// header part (`?...`) is dropped.
pub fn redirect_targets(resp: &Response) -> Vec<Uri> {
    let mut found: Vec<(f32, Uri)> = Vec::new();
    for value in header_values(resp, "Contact") {
        for contact in crate::sip::number::split_values(&value) {
            let Some(uri) = crate::sip::number::value_uri(contact) else {
                continue;
            };
            let uri = uri.split('?').next().unwrap_or(uri);
            let lower = uri.to_ascii_lowercase();
            if !(lower.starts_with("sip:") || lower.starts_with("sips:")) {
                continue;
            }
            let Ok(parsed) = Uri::try_from(uri) else {
                continue;
            };
            let after = match contact.rfind('>') {
                Some(i) => &contact[i + 1..],
                None => contact.split_once(';').map_or("", |(_, p)| p),
            };
            let q = after
                .split(';')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            found.push((q, parsed));
        }
    }
    // A stable sort keeps the listed order among equal q.
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    found.into_iter().map(|(_, u)| u).collect()
}

/// The CANCEL for a client INVITE (RFC 3261 §9.1): same Request-URI,
/// Call-ID, From, To, CSeq number and top Via.
pub fn cancel_for(invite: &Request) -> Request {
    let mut headers = Vec::new();
    let mut via_done = false;
    for h in invite.headers.iter() {
        match h {
            Header::Via(_) if !via_done => {
                via_done = true;
                headers.push(h.clone());
            }
            Header::CallId(_)
            | Header::From(_)
            | Header::To(_)
            | Header::Route(_)
            | Header::MaxForwards(_) => headers.push(h.clone()),
            Header::CSeq(c) => {
                let seq = c.value().split_whitespace().next().unwrap_or("1");
                headers.push(Header::CSeq(format!("{seq} CANCEL").into()));
            }
            _ => {}
        }
    }
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers: headers.into(),
        body: vec![],
        version: Version::V2,
    }
}

fn ip_addr_of(uri: &str, proto: Proto) -> Option<SipAddr> {
    let u = Uri::try_from(uri).ok()?;
    let ip: std::net::IpAddr = u
        .host_with_port
        .host
        .to_string()
        .trim_matches(['[', ']'])
        .parse()
        .ok()?;
    let port = u.host_with_port.port.map(u16::from).unwrap_or(5060);
    let mut a = SipAddr::from(std::net::SocketAddr::new(ip, port));
    a.r#type = Some(match proto {
        Proto::Udp => rsipstack::sip::Transport::Udp,
        Proto::Tcp => rsipstack::sip::Transport::Tcp,
    });
    Some(a)
}

/// A's dialog after we answered it: we are the UAS (RFC 3261 §12.1.1).
/// BYEs go over the connection the INVITE came on; over UDP to the first
/// Route, else the Contact when it is an IP address, else the INVITE's source.
pub fn a_dialog(
    cfg: &ValidSipConfig,
    invite: &Request,
    a_tag: &str,
    connection: SipConnection,
) -> Option<LegDialog> {
    let proto = via_proto(invite);
    let remote = invite.from_header().ok()?.value().to_string();
    let target = contact_uri(invite).or_else(|| value_uri(&remote).map(str::to_string))?;
    let route_set = record_route(invite);
    let destination = if connection.is_reliable() {
        connection.get_remote_addr().cloned()
    } else {
        route_set
            .first()
            .and_then(|r| value_uri(r))
            .and_then(|u| ip_addr_of(u, proto))
            .or_else(|| ip_addr_of(&target, proto))
            .or_else(|| {
                let via = invite.via_header().ok()?;
                let (_, hp) = SipConnection::parse_target_from_via(via).ok()?;
                Some(SipAddr::from(hp))
            })
    };
    Some(LegDialog {
        call_id: header_value(invite, "Call-ID")?,
        local: to_with_tag(invite, a_tag),
        remote,
        remote_target: target,
        route_set,
        local_cseq: 0,
        proto,
        via_host: cfg.advertised_host.clone(),
        via_port: cfg.port_for(proto).unwrap_or(5060),
        connection,
        destination,
    })
}

/// B's dialog from its 2xx: we are the UAC (RFC 3261 §12.1.2, route set =
/// Record-Route reversed). In-dialog requests are sent to the trunk, which
/// acts as our outbound proxy (RFC 3261 §8.1.2), so a private Contact in the
/// 2xx cannot strand our BYE.
pub fn b_dialog(
    cfg: &ValidSipConfig,
    invite: &Request,
    ok: &Response,
    connection: SipConnection,
    destination: Option<SipAddr>,
) -> Option<LegDialog> {
    let via = ViaSelf::of(cfg, via_proto(invite));
    uac_dialog(&via, invite, ok, connection, destination)
}

/// The host and port we put in our Via on a transport (the
/// `advertised_host`, the listener's port for it; 5060 when none).
#[derive(Debug, Clone)]
pub struct ViaSelf {
    pub host: String,
    pub port: u16,
}

impl ViaSelf {
    /// Ours on `proto`.
    pub fn of(cfg: &ValidSipConfig, proto: Proto) -> ViaSelf {
        ViaSelf {
            host: cfg.advertised_host.clone(),
            port: cfg.port_for(proto).unwrap_or(5060),
        }
    }
}

/// [`b_dialog`] with our Via given: the dialog of the 2xx `ok` to our
/// `invite`; `None` when the INVITE lacks Call-ID or From, or `ok` lacks To.
pub fn uac_dialog(
    via: &ViaSelf,
    invite: &Request,
    ok: &Response,
    connection: SipConnection,
    destination: Option<SipAddr>,
) -> Option<LegDialog> {
    let mut route_set = record_route(ok);
    route_set.reverse();
    // The transport the INVITE went over (TCP for a large one, §18.1.1).
    let proto = via_proto(invite);
    Some(LegDialog {
        call_id: header_value(invite, "Call-ID")?,
        local: invite.from_header().ok()?.value().to_string(),
        remote: ok.to_header().ok()?.value().to_string(),
        remote_target: contact_uri(ok).unwrap_or_else(|| invite.uri.to_string()),
        route_set,
        // Our next request continues from the INVITE that was answered
        // (higher than 1 after a redirect, challenge or 422 retry).
        local_cseq: cseq_number(invite).unwrap_or(1),
        proto,
        via_host: via.host.clone(),
        via_port: via.port,
        connection,
        destination,
    })
}

/// The final response A gets for B's final failure `code`, once no retry is
/// left: never a 3xx (its Contact would leak; a redirect we could not or
/// may no longer follow is 480 Temporarily Unavailable), a challenge we
/// cannot answer (no credentials, or ours were refused) is 503, and so is a
/// 422 we cannot satisfy.
pub fn map_b_failure(code: u16) -> u16 {
    match code {
        300..=399 => 480,
        401 | 407 | 422 => 503,
        600 => 486,
        604 => 404,
        606 => 488,
        400..=699 => code,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_mapping() {
        assert_eq!(map_b_failure(486), 486);
        assert_eq!(map_b_failure(302), 480);
        assert_eq!(map_b_failure(407), 503);
        assert_eq!(map_b_failure(600), 486);
        assert_eq!(map_b_failure(422), 503);
        assert_eq!(map_b_failure(401), 503);
    }

    const PREV: &str = "INVITE sip:200@127.0.0.1:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfirst;rport\r\nMax-Forwards: 69\r\n\
From: <sip:300@127.0.0.1>;tag=ft\r\nTo: <sip:200@127.0.0.1:5080>\r\nCall-ID: cid-b\r\n\
CSeq: 4 INVITE\r\nContact: <sip:127.0.0.1:5060;transport=udp>\r\nSession-Expires: 1800\r\n\
Min-SE: 90\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n";

    /// RFC 3261 §8.1.3.4 / §22.2: same Call-ID, From tag, To; CSeq + 1;
    /// a new branch; extra headers replace their namesakes.
    #[test]
    fn retry_keeps_the_dialog_identifiers() {
        let prev = Request::try_from(PREV).expect("parse");
        let ruri = Uri::try_from("sip:999@192.0.2.7:5060").expect("uri");
        let next = retry_invite(
            &prev,
            Some(ruri),
            vec![
                Header::Other("Session-Expires".into(), "3600".into()),
                Header::Other("Min-SE".into(), "3600".into()),
                Header::Authorization("Digest username=\"u\"".into()),
            ],
        )
        .expect("retry");
        let s = next.to_string();
        assert!(
            s.starts_with("INVITE sip:999@192.0.2.7:5060 SIP/2.0\r\n"),
            "{s}"
        );
        assert!(s.contains("Call-ID: cid-b\r\n"));
        assert!(s.contains("From: <sip:300@127.0.0.1>;tag=ft\r\n"));
        assert!(s.contains("To: <sip:200@127.0.0.1:5080>\r\n"));
        assert!(s.contains("CSeq: 5 INVITE\r\n"), "{s}");
        assert!(s.contains("Session-Expires: 3600\r\n") && !s.contains("Session-Expires: 1800"));
        assert!(s.contains("Min-SE: 3600\r\n") && !s.contains("Min-SE: 90"));
        assert!(s.contains("Authorization: Digest username=\"u\"\r\n"));
        assert!(
            s.contains("Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK"),
            "{s}"
        );
        assert!(!s.contains("z9hG4bKfirst"));
        assert_eq!(next.body, b"v=0\r\n");
        assert_eq!(cseq_number(&next), Some(5));
        // No new Request-URI: the same one.
        let again = retry_invite(&next, None, vec![]).expect("retry");
        assert_eq!(again.uri.to_string(), "sip:999@192.0.2.7:5060");
        assert_eq!(cseq_number(&again), Some(6));
    }

    /// RFC 3261 §8.1.3.4: highest q first, equal q in listed order, unusable
    /// Contacts skipped.
    #[test]
    fn redirect_targets_in_q_order() {
        let raw = "SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
From: <sip:300@h>;tag=ft\r\nTo: <sip:200@h>;tag=tt\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:low@192.0.2.1>;q=0.1, <mailto:x@y>;q=1.0\r\n\
Contact: <sip:nq1@192.0.2.2>, \"Hi\" <sip:high@192.0.2.3?Subject=x>;q=0.9\r\n\
Contact: sip:nq2@192.0.2.4;q=0.5\r\nContent-Length: 0\r\n\r\n";
        let r = Response::try_from(raw).expect("parse");
        let t: Vec<String> = redirect_targets(&r).iter().map(|u| u.to_string()).collect();
        assert_eq!(
            t,
            vec![
                "sip:nq1@192.0.2.2",
                "sip:high@192.0.2.3",
                "sip:nq2@192.0.2.4",
                "sip:low@192.0.2.1"
            ]
        );
    }

    #[test]
    fn allow_lists_the_allowed_methods() {
        let listed: Vec<Method> = ALLOW
            .split(',')
            .map(|m| m.trim().parse().expect("a method"))
            .collect();
        assert_eq!(listed, ALLOWED_METHODS);
    }

    #[test]
    fn methods_refused_405_or_501() {
        for m in ALLOWED_METHODS {
            assert_eq!(method_refusal(m), None, "{m}");
        }
        for m in [
            "REGISTER",
            "MESSAGE",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "PUBLISH",
        ] {
            let m: Method = m.parse().expect("a method");
            assert_eq!(method_refusal(&m), Some(405), "{m}");
        }
        for m in [
            "FOO",
            "RE%47IST%45R",
            "!interesting-Method0123456789_*+`.%indeed'~",
        ] {
            let m: Method = m.parse().expect("an extension method");
            assert_eq!(m, Method::Extension(m.to_string()));
            assert_eq!(method_refusal(&m), Some(501), "{m}");
        }
    }

    fn cfg() -> ValidSipConfig {
        crate::sip::SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into()],
            ..crate::sip::SipConfig::default()
        }
        .validate()
        .expect("config")
    }

    fn route() -> CallRoute {
        CallRoute {
            binding_sid: "b1".into(),
            redirect_did: "100".into(),
            destination_did: "200".into(),
            hide_origination_did: false,
            fix_anonymous_cid: false,
            cnam: Some("A \"B\"".into()),
            sip_headers: vec![
                ("X-Foo".into(), "bar\r\nVia: x".into()),
                ("Via".into(), "not an X- header".into()),
            ],
            media: Default::default(),
        }
    }

    #[test]
    fn b_invite_carries_identity_headers_and_nothing_else() {
        let p = Presented {
            from_user: Some("300".into()),
            display: Some("A \"B\"".into()),
            pai: Some("300".into()),
            privacy: false,
        };
        let r = route();
        let inv = b_invite(
            &cfg(),
            &BInvite {
                route: &r,
                presented: &p,
                max_forwards: 9,
                sdp: "v=0\r\n",
                call_id: "cid-b",
                from_tag: "tb",
                transport: Proto::Udp,
            },
        )
        .expect("invite");
        let s = inv.to_string();
        assert!(
            s.starts_with("INVITE sip:200@127.0.0.1:5080 SIP/2.0\r\n"),
            "{s}"
        );
        assert!(
            s.contains("From: \"A \\\"B\\\"\" <sip:300@127.0.0.1>;tag=tb\r\n"),
            "{s}"
        );
        assert!(s.contains("P-Asserted-Identity: \"A \\\"B\\\"\" <sip:300@127.0.0.1>\r\n"));
        assert!(s.contains("Max-Forwards: 9\r\n"));
        assert!(s.contains("X-Foo: barVia: x\r\n"), "{s}");
        assert_eq!(
            s.matches("Via:").count(),
            2,
            "one real Via, one inside the X- value"
        );
        assert!(!s.contains("Privacy"));
    }

    /// RFC 3261 §18.1.1: over 1300 bytes goes over TCP, with Via and
    /// Contact saying TCP; only when we listen on TCP.
    #[test]
    fn large_invite_switches_to_tcp() {
        let both = crate::sip::SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into(), "tcp:127.0.0.1:5062".into()],
            ..crate::sip::SipConfig::default()
        }
        .validate()
        .expect("config");
        let p = Presented {
            from_user: Some("300".into()),
            display: None,
            pai: None,
            privacy: false,
        };
        let mut r = route();
        let invite = |r: &CallRoute, transport| {
            b_invite(
                &both,
                &BInvite {
                    route: r,
                    presented: &p,
                    max_forwards: 70,
                    sdp: "v=0\r\n",
                    call_id: "cid-b",
                    from_tag: "tb",
                    transport,
                },
            )
            .expect("invite")
        };
        let small = invite(&r, Proto::Udp);
        assert!(!needs_tcp(&both, &small));
        r.sip_headers = (0..6)
            .map(|i| (format!("X-Long-{i}"), "v".repeat(240)))
            .collect();
        let large = invite(&r, Proto::Udp);
        assert!(large.to_bytes().len() > UDP_REQUEST_LIMIT);
        assert!(needs_tcp(&both, &large));
        assert!(!needs_tcp(&cfg(), &large), "no TCP listener: stays on UDP");
        let s = invite(&r, Proto::Tcp).to_string();
        assert!(s.contains("Via: SIP/2.0/TCP 127.0.0.1:5062;"), "{s}");
        assert!(
            s.contains("Contact: <sip:127.0.0.1:5062;transport=tcp>"),
            "{s}"
        );
        assert!(
            s.starts_with("INVITE sip:200@127.0.0.1:5080 SIP/2.0"),
            "{s}"
        );
        let addr = trunk_tcp_addr(&both).expect("address");
        assert_eq!(addr.r#type, Some(rsipstack::sip::Transport::Tcp));
        assert_eq!(addr.to_string(), "TCP 127.0.0.1:5080");
    }

    #[test]
    fn anonymous_presentation() {
        let p = Presented {
            from_user: None,
            display: Some("Anonymous".into()),
            pai: Some("300".into()),
            privacy: true,
        };
        let from = b_from(&cfg(), &p, "t");
        assert_eq!(
            from,
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=t"
        );
    }

    #[test]
    fn a_response_has_tag_contact_and_record_route() {
        let raw = "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\r\n\
From: <sip:300@h>;tag=fa\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: ca\r\nCSeq: 1 INVITE\r\n\
Record-Route: <sip:192.0.2.50;lr>, <sip:192.0.2.51;lr>\r\nContact: <sip:300@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n";
        let inv = Request::try_from(raw).expect("parse");
        let ep = rsipstack::EndpointBuilder::new().build();
        let r = a_response(&ep.inner, &cfg(), &inv, "ours", 180, None).to_string();
        assert!(r.contains("To: <sip:100@127.0.0.1>;tag=ours\r\n"), "{r}");
        assert!(r.contains("Contact: <sip:127.0.0.1:5060;transport=udp>\r\n"));
        let rr: Vec<_> = r
            .lines()
            .filter(|l| l.starts_with("Record-Route"))
            .collect();
        assert_eq!(rr.len(), 2, "{r}");
        assert!(rr[0].contains("192.0.2.50"));
        let r = a_response(&ep.inner, &cfg(), &inv, "ours", 486, None).to_string();
        assert!(!r.contains("Contact") && !r.contains("Record-Route"));
    }

    #[test]
    fn cancel_copies_the_right_headers() {
        let raw = "INVITE sip:200@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc\r\n\
Max-Forwards: 69\r\nFrom: <sip:300@h>;tag=t\r\nTo: <sip:200@h>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n\
Contact: <sip:h>\r\nX-Foo: 1\r\nContent-Length: 0\r\n\r\n";
        let inv = Request::try_from(raw).expect("parse");
        let c = cancel_for(&inv);
        let s = c.to_string();
        assert!(
            s.starts_with("CANCEL sip:200@127.0.0.1:5080 SIP/2.0"),
            "{s}"
        );
        assert!(s.contains("CSeq: 7 CANCEL"));
        assert!(s.contains("branch=z9hG4bKabc"));
        assert!(!s.contains("X-Foo"));
        assert!(!s.contains("Contact"));
    }
}

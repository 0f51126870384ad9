//! The code that hostile input reaches, gathered as two plain functions so
//! that the fuzz targets (`fuzz/`) and the corpus regression test
//! (`tests/hostile_corpus.rs`) drive exactly what a packet drives.
//!
//! Nothing here changes behaviour: each function calls the same parser and
//! helpers, in the same order, as the receive path does for one packet.
//! The functions return nothing useful; their contract is "never panics".
//!
//! * [`sip_message`]: the bytes of one UDP datagram or TCP stream chunk, as
//!   rsipstack reads them (`SipMessage::try_from`, the stream codec that
//!   splits TCP by Content-Length, the `received=` rewrite of the top Via,
//!   the transaction key, the dialog id of an ACK), then the header helpers
//!   that Mediator runs on every new request and response (`sip::message`,
//!   `sip::number`, caller-ID, the checks of a new INVITE), then the SDP
//!   path of an INVITE body.
//! * [`sdp_offer_answer`]: an SDP body as A's offer (parse, the offer we
//!   send to B) and as B's answer (the codec we pick, the answer and the
//!   offer we send to A). Every SDP we build from it must parse again with
//!   the same number of media sections: a failure there would mean a
//!   hostile offer can make us send broken or injected SDP, and panics.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rsipstack::dialog::DialogId;
use rsipstack::sip::{SipMessage, prelude::HeadersExt};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transport::SipConnection;
use rsipstack::transport::stream::{SipCodec, SipCodecType};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::call::callerid::caller_of;
use crate::media::sdp;
use crate::sip::message;
use crate::sip::number;

/// The source address the harness pretends a packet came from.
const SOURCE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5060);

/// Runs one packet (`data`) through the SIP receive path: as a UDP datagram
/// and as bytes arriving on a TCP stream.
pub fn sip_message(data: &[u8]) {
    // UDP: one datagram is one message (rsipstack `transport/udp.rs`).
    if !data.iter().all(|b| b.is_ascii_whitespace())
        && let Ok(msg) = SipMessage::try_from(data)
    {
        received(msg, rsipstack::sip::Transport::Udp);
    }
    // TCP: the stream codec splits by Content-Length (`transport/stream.rs`).
    let mut codec = SipCodec::new();
    let mut buf = BytesMut::from(data);
    for _ in 0..64 {
        match codec.decode(&mut buf) {
            Ok(Some(SipCodecType::Message(msg))) => received(msg, rsipstack::sip::Transport::Tcp),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

/// What happens to a parsed message once the transport has it.
fn received(msg: SipMessage, transport: rsipstack::sip::Transport) {
    let _ = msg.to_string();
    let Ok(msg) = SipConnection::update_msg_received(msg, SOURCE, transport) else {
        return;
    };
    match &msg {
        SipMessage::Request(req) => {
            // Endpoint: the transaction key, and an ACK's dialog.
            if TransactionKey::from_request(req, TransactionRole::Server).is_err() {
                return; // dropped by the endpoint
            }
            let _ = DialogId::try_from((req, TransactionRole::Server));
            let _ = req.cseq_header().and_then(|c| c.seq());
            request(req);
        }
        SipMessage::Response(resp) => {
            if TransactionKey::from_response(resp, TransactionRole::Client).is_err() {
                return;
            }
            let _ = DialogId::try_from((resp, TransactionRole::Client));
            let _ = message::code_of(resp);
            let _ = message::contact_uri(resp);
            let _ = message::record_route(resp);
            let _ = resp.to_header().and_then(|t| t.tag());
            if let Some(body) = message::sdp_body(resp, resp.body()) {
                sdp_offer_answer(&body);
            }
        }
    }
    let _ = msg.to_string();
}

/// The helpers Mediator runs on a new request (`call::dispatch`,
/// `call::binding::admit`, caller-ID, the A dialog).
fn request(req: &rsipstack::sip::Request) {
    // dispatch: malformed (400), in-dialog or not, the Call-ID.
    let _ = message::request_problem(req);
    let _ = req.to_header().ok().and_then(|t| t.tag().ok().flatten());
    let _ = message::call_id(req);
    let _ = message::cseq_number(req);
    // admit (and OPTIONS): trusted source, Max-Forwards, Require,
    // Request-URI, body type, Accept.
    let _ = message::source_ip(req);
    let _ = message::max_forwards(req);
    let _ = message::required_options(req);
    let ruri = req.uri.to_string();
    let _ = message::scheme_supported(&ruri);
    let _ = number::uri_number(&ruri);
    let _ = message::unsupported_body(req, req.body());
    let _ = message::accepts_sdp(req);
    // Caller-ID and the values copied to the B leg.
    let _ = caller_of(req);
    let from = req
        .from_header()
        .map(|f| f.value().to_string())
        .unwrap_or_default();
    let _ = message::tag_of(&from);
    let _ = number::is_anonymous_value(&from);
    for v in message::header_values(req, "P-Asserted-Identity") {
        let _ = number::header_number(&v);
        for one in number::split_values(&v) {
            if let Some(uri) = number::value_uri(one) {
                let _ = number::uri_user(uri);
            }
        }
    }
    let _ = message::privacy_id(req);
    let _ = message::contact_uri(req);
    let _ = message::record_route(req);
    let _ = message::via_proto(req);
    let _ = message::to_with_tag(req, "harness");
    if let Some(body) = message::sdp_body(req, req.body()) {
        sdp_offer_answer(&body);
    }
}

/// Runs an SDP body through offer/answer, as A's offer and as B's answer.
///
/// # Panics
///
/// When an SDP we build from `text` does not parse back with the same
/// number of media sections (see the module doc).
pub fn sdp_offer_answer(text: &str) {
    let Ok(parsed) = sdp::parse(text) else {
        return;
    };
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let origin = sdp::Origin { id: 1, version: 1 };
    let Some(audio) = parsed.audio.clone() else {
        return;
    };
    let _ = audio.rtp_target();
    let _ = audio.rtcp_target();
    // As A's offer: the offer we send to B.
    if let Ok(offer) = sdp::offer_for_b(&audio, origin, ip, 40000) {
        check_ours(&offer, 1);
    }
    // As B's answer: the codec we take, A's codec and A's answer.
    if let Ok(b_codec) = sdp::answer_codec(&audio) {
        let _ = sdp::offer_for_a(&b_codec, origin, ip, 40002);
        check_ours(&sdp::offer_for_a(&b_codec, origin, ip, 40002), 1);
        if let Ok(a_codec) = sdp::choose_for_a(&audio, &b_codec) {
            let answer = sdp::answer_for(&parsed, &audio, &a_codec, origin, ip, 40004);
            check_ours(&answer, parsed.desc.media_descriptions.len());
        }
    }
}

/// An SDP we built must parse, with `media` media sections and an audio
/// line.
fn check_ours(ours: &str, media: usize) {
    let back = sdp::parse(ours).unwrap_or_else(|e| panic!("our SDP does not parse: {e}\n{ours}"));
    assert_eq!(
        back.desc.media_descriptions.len(),
        media,
        "our SDP has other media sections than it should:\n{ours}"
    );
    assert!(back.audio.is_some(), "our SDP lost its audio line:\n{ours}");
}

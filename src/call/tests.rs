//! Call control over real loopback sockets: the core started with a
//! [`StaticRouter`], a UDP socket as the caller and one as the trunk.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::router::{StaticBinding, StaticRouter};
use super::{SipHandle, start};
use crate::media::MediaConfig;
use crate::sip::{SipConfig, SipError};

const REDIRECT: &str = "15162065340";
const DESTINATION: &str = "15162065303";

fn router() -> Arc<StaticRouter> {
    Arc::new(StaticRouter::new(vec![StaticBinding {
        binding_sid: "b-open".into(),
        redirect_did: REDIRECT.into(),
        destination_did: DESTINATION.into(),
        origination_did: None,
        wait_origination_did: false,
        hide_origination_did: false,
        fix_anonymous_cid: false,
        cnam: None,
        sip_headers: Default::default(),
        announce: None,
        ringback: None,
        dtmf: None,
    }]))
}

/// Starts the core on a free loopback UDP port; returns it and the port.
async fn start_core(
    trunk: &str,
    ring_timeout_secs: u64,
    drain_secs: u64,
    router: Arc<StaticRouter>,
    shutdown: CancellationToken,
) -> (SipHandle, u16) {
    for _ in 0..20 {
        let port = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
            probe.local_addr().expect("addr").port()
        };
        let sip = SipConfig {
            listen: vec![format!("udp:127.0.0.1:{port}")],
            advertised_host: "127.0.0.1".into(),
            trunk: trunk.into(),
            trusted: vec!["127.0.0.0/8".into()],
            ring_timeout_secs,
            drain_secs,
            ..SipConfig::default()
        };
        let media = MediaConfig {
            advertised_ip: "127.0.0.1".into(),
            rtp_ports: "42100-42199".into(),
            bind_ip: "127.0.0.1".parse().expect("ip"),
            ..MediaConfig::default()
        };
        match start(sip, media, router.clone(), shutdown.clone()).await {
            Ok(h) => return (h, port),
            Err(SipError::Bind(_)) => continue, // taken meanwhile: try another
            Err(e) => panic!("start: {e}"),
        }
    }
    panic!("no free UDP port for the core");
}

fn invite(caller_port: u16, core_port: u16) -> String {
    let sdp = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 16000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:{REDIRECT}@127.0.0.1:{core_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{caller_port};branch=z9hG4bK-unit-1\r\n\
         From: <sip:12127361234@127.0.0.1>;tag=a1\r\n\
         To: <sip:{REDIRECT}@127.0.0.1>\r\n\
         Call-ID: unit-shutdown-1@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:12127361234@127.0.0.1:{caller_port}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Reads SIP messages on `sock` until one starts with `prefix`.
async fn wait_for(sock: &UdpSocket, prefix: &str, within: Duration) -> String {
    let mut buf = vec![0u8; 65535];
    tokio::time::timeout(within, async {
        loop {
            let (n, _) = sock.recv_from(&mut buf).await.expect("recv");
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.starts_with(prefix) {
                return text;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {prefix} within {within:?}"))
}

/// The caller got its final response (ring timeout, B silent) while B's
/// INVITE transaction still runs (Timer B is 32 s away). At shutdown the
/// call must end within the core's grace time and leave its record, not be
/// dropped unrecorded when the stack stops.
#[tokio::test]
async fn shutdown_records_a_call_still_waiting_for_the_b_leg() {
    // The trunk receives the INVITE and never answers.
    let trunk = UdpSocket::bind("127.0.0.1:0").await.expect("trunk");
    let trunk_port = trunk.local_addr().expect("addr").port();
    let router = router();
    let shutdown = CancellationToken::new();
    let (core, core_port) = start_core(
        &format!("sip:127.0.0.1:{trunk_port}"),
        1,
        1,
        router.clone(),
        shutdown.clone(),
    )
    .await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.expect("caller");
    let caller_port = caller.local_addr().expect("addr").port();
    caller
        .send_to(
            invite(caller_port, core_port).as_bytes(),
            ("127.0.0.1", core_port),
        )
        .await
        .expect("send");
    let b_invite = wait_for(&trunk, "INVITE ", Duration::from_secs(5)).await;
    assert!(
        b_invite.starts_with(&format!("INVITE sip:{DESTINATION}@127.0.0.1:{trunk_port}")),
        "{b_invite}"
    );
    // Ring timeout (1 s) with no provisional response from B: 408.
    wait_for(&caller, "SIP/2.0 408", Duration::from_secs(5)).await;
    assert_eq!(
        core.active_calls(),
        1,
        "still waiting for B's final response"
    );
    assert!(router.records().is_empty());

    let t0 = std::time::Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), core.stopped())
        .await
        .expect("core stopped");
    let records = router.records();
    assert_eq!(
        records.len(),
        1,
        "the call was recorded before the core stopped"
    );
    let r = &records[0];
    assert_eq!(r.binding_sid.as_deref(), Some("b-open"));
    assert_eq!(
        (r.sip_status, r.hangup_side.as_deref()),
        (408, Some("system"))
    );
    assert_eq!(r.number_dst, DESTINATION);
    assert!(r.date_answer.is_none());
    // Drain (1 s) plus the short wait for B, not the core's whole 5 s grace.
    assert!(
        t0.elapsed() < Duration::from_millis(6500),
        "{:?}",
        t0.elapsed()
    );
}

//! An outbound INVITE through the trunk, where Mediator is the UAC: the
//! binding call's B leg, and both legs of a dialout. Sending (over TCP when
//! too large for UDP, RFC 3261 §18.1.1), reading its responses into the
//! call's events, retries (3xx, 401/407, 422: [`Retries`]), PRACK of
//! reliable 1xx (RFC 3262 §4) and CANCEL (RFC 3261 §9.1).

use std::time::Duration;

use rsipstack::sip::{Header, Request, Response, SipMessage, Uri};
use rsipstack::transaction::Transaction;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::mpsc::error::SendError;
use tracing::{debug, info, warn};

use super::Ctx;
use super::legs::{
    BInvite, UDP_REQUEST_LIMIT, ViaSelf, b_dialog, b_invite, cancel_for, cseq_number, needs_tcp,
    retry_invite, trunk_tcp_addr, uac_dialog,
};
use super::registry::CallEvent;
use super::reliable::ReliableUac;
use super::retry::Retries;
use crate::media::relay::Side;
use crate::sip::SipError;
use crate::sip::config::{Proto, ValidSipConfig};
use crate::sip::dialog::LegDialog;
use crate::sip::dialog::{final_response, send_request};
use crate::sip::message::{code_of, header_value, to_tag, via_proto};

/// How long a TCP connect to the UDP trunk may take when a large INVITE is
/// switched to TCP (RFC 3261 §18.1.1) before we send it over UDP instead.
const TCP_SWITCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How many reliable 1xx a leg's watcher counts (for the CSeq of a late
/// BYE); a trunk sending more is not followed further.
const MAX_PRACKS: usize = 64;

/// The largest UDP payload over IPv4 (65,535 bytes less the IP and UDP
/// headers), in bytes.
const UDP_MAX_PAYLOAD: usize = 65_507;

/// One outbound INVITE (and its retries) before it is answered or fails.
pub(crate) struct UacLeg {
    /// The INVITE of the current attempt (the latest retry).
    pub invite: Request,
    pub conn: Option<SipConnection>,
    pub dest: Option<SipAddr>,
    /// A provisional response came (a CANCEL may be sent).
    pub provisional: bool,
    /// Cancel as soon as a provisional response comes.
    pub cancel_pending: bool,
    pub cancelled: bool,
    /// What the INVITE was retried for so far.
    pub retries: Retries,
    /// Reliable 1xx seen (RFC 3262 §4).
    pub reliable: ReliableUac,
    /// The last CSeq number we used in the leg's dialog (the INVITE's, then
    /// each PRACK's); the dialog continues after it.
    pub cseq: u32,
    /// Which leg of the call this is: its responses come as
    /// [`CallEvent::AResponse`] (A) or [`CallEvent::BResponse`] (B).
    pub side: Side,
}

impl UacLeg {
    /// Sends the INVITE built from `params` to the trunk (over TCP when it
    /// is too large for UDP and we listen on TCP, back to UDP when the TCP
    /// connect fails), and reads its responses into `events` as leg `side`.
    pub async fn send(
        ctx: &Ctx,
        params: &mut BInvite<'_>,
        side: Side,
        events: UnboundedSender<CallEvent>,
    ) -> Result<UacLeg, SipError> {
        let cid = params.call_id.to_string();
        let mut req = b_invite(&ctx.cfg, params)?;
        let mut tx = None;
        if needs_tcp(&ctx.cfg, &req)
            && let Some(tcp) = trunk_tcp_addr(&ctx.cfg)
        {
            // RFC 3261 §18.1.1: too large for UDP, so over TCP to the same
            // host and port; back to UDP if the TCP connect fails.
            params.transport = Proto::Tcp;
            let big = b_invite(&ctx.cfg, params)?;
            let size = big.to_bytes().len();
            // A trunk whose firewall drops TCP would otherwise hold the
            // call for the kernel's connect timeout (about 2 minutes).
            let sent = tokio::time::timeout(
                TCP_SWITCH_CONNECT_TIMEOUT,
                send_request(&ctx.endpoint, big.clone(), None, Some(tcp)),
            )
            .await;
            match sent {
                Ok(Ok(sent)) if sent.connection.is_some() => {
                    info!(call_id = %cid, bytes = size, "INVITE over UDP's limit: sent over TCP (RFC 3261 18.1.1)");
                    req = big;
                    tx = Some(sent);
                }
                _ => {
                    warn!(call_id = %cid, bytes = size, "INVITE over UDP's limit, but TCP to the trunk failed: sent over UDP");
                }
            }
        } else if ctx.cfg.trunk.proto == Proto::Udp && req.to_bytes().len() > UDP_REQUEST_LIMIT {
            warn!(call_id = %cid, bytes = req.to_bytes().len(), "INVITE over UDP's limit and no TCP listener: sent over UDP");
        }
        let tx = match tx {
            Some(tx) => tx,
            None => {
                let size = req.to_bytes().len();
                if via_proto(&req) == Proto::Udp && size > UDP_MAX_PAYLOAD {
                    // No datagram can carry it: fail the leg now rather
                    // than wait for a response that cannot come.
                    return Err(SipError::TooLarge(size));
                }
                send_request(&ctx.endpoint, req.clone(), None, None).await?
            }
        };
        let (conn, dest) = (tx.connection.clone(), tx.destination.clone());
        if conn.is_none() && via_proto(&req) == Proto::Tcp {
            // A refused TCP connect: fail now rather than at Timer B.
            return Err(SipError::Unreachable(format!("{:?}", ctx.cfg.trunk)));
        }
        let via = ViaSelf::of(&ctx.cfg, via_proto(&req));
        watch(tx, side, events, via);
        let cseq = cseq_number(&req).unwrap_or(1);
        Ok(UacLeg {
            invite: req,
            conn,
            dest,
            provisional: false,
            cancel_pending: false,
            cancelled: false,
            retries: Retries::new(ctx.cfg.timers.session_expires),
            reliable: ReliableUac::default(),
            cseq,
            side,
        })
    }

    /// The dialog of the 2xx `ok` on this leg, through our connection to the
    /// trunk, going on after our PRACKs' CSeq; `None` without a connection
    /// or when `ok` lacks what a dialog needs (see [`b_dialog`]).
    pub fn dialog(&self, cfg: &ValidSipConfig, ok: &Response) -> Option<LegDialog> {
        let conn = self.conn.clone()?;
        let mut d = b_dialog(cfg, &self.invite, ok, conn, self.dest.clone())?;
        d.local_cseq = d.local_cseq.max(self.cseq);
        Some(d)
    }

    /// Whether `r` answers the current attempt (not an earlier one we
    /// have retried).
    pub fn is_current(&self, r: &Response) -> bool {
        cseq_number(r) == cseq_number(&self.invite)
    }

    /// Sends the INVITE again after a failure (see [`Retries::next`]),
    /// through the same connection to the trunk, our outbound proxy (also
    /// when the Request-URI is a redirect's Contact).
    pub async fn retry(
        &mut self,
        ctx: &Ctx,
        ruri: Option<Uri>,
        headers: Vec<Header>,
        events: UnboundedSender<CallEvent>,
    ) -> Result<(), SipError> {
        let mut req = retry_invite(&self.invite, ruri, headers)?;
        if cseq_number(&req).is_some_and(|n| n <= self.cseq) {
            // Our PRACKs took CSeq numbers after the INVITE's: go on after them.
            for h in req.headers.iter_mut() {
                if let Header::CSeq(_) = h {
                    *h = Header::CSeq(format!("{} INVITE", self.cseq + 1).into());
                }
            }
        }
        self.cseq = cseq_number(&req).unwrap_or(self.cseq + 1);
        let tx = send_request(
            &ctx.endpoint,
            req.clone(),
            self.conn.clone(),
            self.dest.clone(),
        )
        .await?;
        if tx.connection.is_some() {
            self.conn = tx.connection.clone();
        }
        if tx.destination.is_some() {
            self.dest = tx.destination.clone();
        }
        info!(side = ?self.side, cseq = ?cseq_number(&req), ruri = %req.uri, "INVITE retried");
        let via = ViaSelf::of(&ctx.cfg, via_proto(&req));
        self.invite = req;
        self.provisional = false;
        watch(tx, self.side, events, via);
        Ok(())
    }

    /// Cancels the INVITE now, or as soon as a provisional response comes
    /// (a CANCEL before any provisional is forbidden, RFC 3261 §9.1). An
    /// answered leg is ended by its caller with BYE instead.
    pub fn cancel(&mut self, ctx: &Ctx) {
        if self.cancelled {
            return;
        }
        if !self.provisional {
            self.cancel_pending = true;
            return;
        }
        self.cancel_pending = false;
        self.cancelled = true;
        let cancel = cancel_for(&self.invite);
        let (conn, dest) = (self.conn.clone(), self.dest.clone());
        let ep = ctx.endpoint.clone();
        tokio::spawn(async move {
            match send_request(&ep, cancel, conn, dest).await {
                Ok(mut tx) => {
                    let r = final_response(&mut tx).await;
                    debug!(status = ?r.map(|r| code_of(&r)), "CANCEL answered");
                }
                Err(e) => warn!(error = %e, "CANCEL not sent"),
            }
        });
    }

    /// Sends the PRACK for the reliable 1xx `r` (RSeq `rseq`) in the early
    /// dialog it made (RFC 3262 §4), to the trunk; its 200 is absorbed.
    pub fn prack(&mut self, ctx: &Ctx, r: &Response, rseq: u32) {
        let Some(conn) = self.conn.clone() else {
            warn!("reliable 1xx but no connection to the trunk: no PRACK");
            return;
        };
        let dest = self.dest.clone();
        let Some(mut early) = b_dialog(&ctx.cfg, &self.invite, r, conn.clone(), dest.clone())
        else {
            warn!("reliable 1xx without a usable To or Call-ID: no PRACK");
            return;
        };
        early.local_cseq = self.cseq;
        let invite_cseq = cseq_number(r).unwrap_or(self.cseq);
        let prack = match super::reliable::prack(&mut early, rseq, invite_cseq) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "PRACK not built");
                return;
            }
        };
        self.cseq = early.local_cseq;
        debug!(rseq, cseq = self.cseq, side = ?self.side, "PRACK sent");
        let ep = ctx.endpoint.clone();
        tokio::spawn(async move {
            match send_request(&ep, prack, Some(conn), dest).await {
                Ok(mut tx) => {
                    let r = final_response(&mut tx).await;
                    debug!(status = ?r.map(|r| code_of(&r)), "PRACK answered");
                }
                Err(e) => warn!(error = %e, "PRACK not sent"),
            }
        });
    }
}

/// Ends with BYE the dialog of `ok`, a 2xx on the INVITE transaction `tx`
/// that no call is left to take (the stack has ACKed it); `via` is our Via
/// for it. `pracks` is how many PRACKs the call sent in the leg's early
/// dialog: the BYE's CSeq comes after theirs (RFC 3261 §12.2.1.1).
fn end_orphan(tx: &Transaction, via: &ViaSelf, ok: &Response, pracks: u32) {
    let Some(conn) = tx.connection.clone() else {
        warn!("a 2xx after the call ended, but no connection to the trunk: no BYE");
        return;
    };
    let Some(mut d) = uac_dialog(via, &tx.original, ok, conn, tx.destination.clone()) else {
        warn!("a 2xx after the call ended without a usable To or Call-ID: no BYE");
        return;
    };
    d.local_cseq += pracks;
    info!(call_id = %d.call_id, "answered after the call ended: ACKed, and ended with BYE (RFC 3261 §15)");
    let ep = tx.endpoint_inner.clone();
    tokio::spawn(async move {
        match d.bye(&ep).await {
            Ok(code) => debug!(call_id = %d.call_id, ?code, "BYE answered"),
            Err(e) => warn!(call_id = %d.call_id, error = %e, "BYE failed"),
        }
    });
}

/// Reads the responses of an INVITE client transaction of leg `side` into
/// the call's events. The "gone" event (the transaction ended without a
/// final response) is not sent after a failure response: the call has then
/// decided, and a retry runs in a transaction of its own.
///
/// A 2xx that comes once the call has ended (its events closed: a 200 that
/// crossed our CANCEL later than the call waited, or after a shutdown) is
/// ended here with BYE ([`end_orphan`], our Via `via`), once per To tag, so the far end is
/// never left holding an answered call (RFC 3261 §15; field case BC-02).
pub(crate) fn watch(mut tx: Transaction, side: Side, ev: UnboundedSender<CallEvent>, via: ViaSelf) {
    tokio::spawn(async move {
        let mut failed = false;
        // To tags of the 2xx the call took, or we ended.
        let mut answered: Vec<Option<String>> = Vec::new();
        // (To tag, RSeq) of each reliable 1xx: the call PRACKs each once,
        // each PRACK taking the leg's next CSeq (at most MAX_PRACKS kept).
        let mut rseqs: Vec<(Option<String>, String)> = Vec::new();
        while let Some(msg) = tx.receive().await {
            let SipMessage::Response(r) = msg else {
                continue;
            };
            let code = code_of(&r);
            failed |= code >= 300;
            if (101..200).contains(&code)
                && rseqs.len() < MAX_PRACKS
                && let Some(rseq) = header_value(&r, "RSeq")
            {
                let key = (to_tag(&r), rseq);
                if !rseqs.contains(&key) {
                    rseqs.push(key);
                }
            }
            let two = (200..300).contains(&code);
            let tag = two.then(|| to_tag(&r)).flatten();
            let event = match side {
                Side::A => CallEvent::AResponse(Box::new(r)),
                Side::B => CallEvent::BResponse(Box::new(r)),
            };
            match ev.send(event) {
                Ok(()) => {}
                Err(SendError(CallEvent::AResponse(r) | CallEvent::BResponse(r)))
                    if two && !answered.contains(&tag) =>
                {
                    end_orphan(&tx, &via, &r, u32::try_from(rseqs.len()).unwrap_or(0));
                }
                Err(_) => {}
            }
            if two && !answered.contains(&tag) {
                answered.push(tag);
            }
        }
        if !failed {
            let _ = ev.send(match side {
                Side::A => CallEvent::AGone,
                Side::B => CallEvent::BGone,
            });
        }
    });
}

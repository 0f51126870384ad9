//! One side of a call as a dialog (RFC 3261 §12): what we need to send
//! in-dialog requests (BYE) on it, and a helper to run client transactions.

use rsipstack::sip::{Header, Method, Request, Response, SipMessage, StatusCodeKind, Uri, Version};
use rsipstack::transaction::Transaction;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transport::{SipAddr, SipConnection};

use super::SipError;
use super::config::Proto;
use super::message::our_via;

/// The state of one leg's dialog, from our side.
#[derive(Clone)]
pub struct LegDialog {
    /// Call-ID of this leg.
    pub call_id: String,
    /// Our identity on this leg, with our tag (the From of our requests).
    pub local: String,
    /// The peer's identity, with its tag (the To of our requests).
    pub remote: String,
    /// The peer's Contact URI: the Request-URI of our requests (§12.2.1.1).
    pub remote_target: String,
    /// Route set (§12.1.1 UAS: Record-Route in order; §12.1.2 UAC: reversed).
    pub route_set: Vec<String>,
    /// Our last CSeq number on this leg (§12.2.1.1: incremented per request).
    pub local_cseq: u32,
    /// Transport for our Via.
    pub proto: Proto,
    /// Host written in our Via.
    pub via_host: String,
    /// Port written in our Via.
    pub via_port: u16,
    /// Connection to send on (the one the dialog was made over).
    pub connection: SipConnection,
    /// Where to send (UDP); `None` lets a stream connection send to its peer.
    pub destination: Option<SipAddr>,
}

impl LegDialog {
    /// Builds the next in-dialog request of `method` (RFC 3261 §12.2.1.1).
    pub fn request(&mut self, method: Method) -> Result<Request, SipError> {
        self.local_cseq += 1;
        let uri = Uri::try_from(self.remote_target.as_str())
            .map_err(|e| SipError::Malformed(format!("remote target: {e}")))?;
        let mut headers = vec![
            Header::Via(our_via(self.proto, &self.via_host, self.via_port).into()),
            Header::MaxForwards("70".into()),
        ];
        for r in &self.route_set {
            headers.push(Header::Route(r.as_str().into()));
        }
        headers.extend([
            Header::From(self.local.as_str().into()),
            Header::To(self.remote.as_str().into()),
            Header::CallId(self.call_id.as_str().into()),
            Header::CSeq(format!("{} {}", self.local_cseq, method).into()),
            Header::UserAgent(super::endpoint::USER_AGENT.into()),
        ]);
        Ok(Request {
            method,
            uri,
            headers: headers.into(),
            body: vec![],
            version: Version::V2,
        })
    }

    /// Sends a BYE on this leg and waits (bounded by Timer F, 64*T1) for its
    /// final response. Returns the status code, or `None` on timeout.
    pub async fn bye(&mut self, endpoint: &EndpointInnerRef) -> Result<Option<u16>, SipError> {
        let req = self.request(Method::Bye)?;
        let mut tx = send_request(
            endpoint,
            req,
            Some(self.connection.clone()),
            self.destination.clone(),
        )
        .await?;
        Ok(final_response(&mut tx)
            .await
            .map(|r| u16::from(r.status_code)))
    }
}

/// Starts a client transaction for `req` on `connection` (or a looked-up
/// one when `None`) towards `destination`.
pub async fn send_request(
    endpoint: &EndpointInnerRef,
    req: Request,
    connection: Option<SipConnection>,
    destination: Option<SipAddr>,
) -> Result<Transaction, SipError> {
    let key = TransactionKey::from_request(&req, TransactionRole::Client)?;
    let mut tx = Transaction::new_client(key, req, endpoint.clone(), connection);
    tx.destination = destination;
    tx.send().await?;
    Ok(tx)
}

/// Receives responses until a final one (or the transaction ends).
pub async fn final_response(tx: &mut Transaction) -> Option<Response> {
    while let Some(msg) = tx.receive().await {
        if let SipMessage::Response(r) = msg
            && r.status_code.kind() != StatusCodeKind::Provisional
        {
            return Some(r);
        }
    }
    None
}

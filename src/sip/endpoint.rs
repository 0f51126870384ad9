//! Building the rsipstack endpoint: UDP and TCP listeners and the
//! transaction layer.

use rsipstack::EndpointBuilder;
use rsipstack::transaction::Endpoint;
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transport::{TcpListenerConnection, TransportLayer, udp::UdpConnection};
use tokio_util::sync::CancellationToken;

use super::SipError;
use super::config::{Proto, ValidSipConfig};

/// The User-Agent / Server value we send.
pub const USER_AGENT: &str = concat!("Mediator/", env!("CARGO_PKG_VERSION"));

/// Binds every listener of `cfg` and builds the endpoint. UDP sockets are
/// bound here (a busy port is an error at once); TCP listeners bind when the
/// endpoint starts serving. The client INVITE transaction ACKs 2xx itself
/// (`auto_ack_2xx`), which is what a B2BUA leg needs.
pub async fn build_endpoint(
    cfg: &ValidSipConfig,
    cancel: CancellationToken,
) -> Result<Endpoint, SipError> {
    let transport = TransportLayer::new(cancel.child_token());
    for l in &cfg.listen {
        match l.proto {
            Proto::Udp => {
                let conn =
                    UdpConnection::create_connection(l.addr, None, Some(cancel.child_token()))
                        .await
                        .map_err(|e| SipError::Bind(format!("udp:{}: {e}", l.addr)))?;
                transport.add_transport(conn.into());
            }
            Proto::Tcp => {
                // Probe the port so a busy TCP port fails start() too.
                std::net::TcpListener::bind(l.addr)
                    .map_err(|e| SipError::Bind(format!("tcp:{}: {e}", l.addr)))?;
                let conn = TcpListenerConnection::new(l.addr, None)
                    .await
                    .map_err(|e| SipError::Bind(format!("tcp:{}: {e}", l.addr)))?;
                transport.add_transport(conn.into());
            }
        }
    }
    let option = EndpointOption {
        auto_ack_2xx: true,
        ..EndpointOption::default()
    };
    let endpoint = EndpointBuilder::new()
        .with_user_agent(USER_AGENT)
        .with_transport_layer(transport)
        .with_cancel_token(cancel)
        .with_option(option)
        .with_allows(vec![
            rsipstack::sip::Method::Invite,
            rsipstack::sip::Method::Ack,
            rsipstack::sip::Method::Cancel,
            rsipstack::sip::Method::Bye,
            rsipstack::sip::Method::Options,
        ])
        .build();
    Ok(endpoint)
}

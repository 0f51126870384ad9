//! Building the rsipstack endpoint: UDP and TCP listeners and the
//! transaction layer.

use rsipstack::EndpointBuilder;
use rsipstack::transaction::Endpoint;
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transport::{TcpListenerConnection, TransportLayer, udp::UdpConnection};
use tokio_util::sync::CancellationToken;

use super::SipError;
use super::config::{Proto, ValidSipConfig};

/// The receive and send buffer asked for each SIP UDP socket, in bytes.
/// The kernel's default (about 208 KiB here) overflows in the bursts a
/// carrier trunk sends at a few thousand calls per second, and every datagram
/// dropped there costs a retransmission 500 ms later. The kernel caps the
/// value at `net.core.rmem_max` / `wmem_max` (docs/performance.md).
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Binds a UDP socket for SIP on `addr` with [`UDP_BUFFER_BYTES`] buffers
/// (best effort: a smaller buffer than asked is not an error).
fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    tracing::debug!(
        %addr,
        recv_buffer = ?socket.recv_buffer_size(),
        send_buffer = ?socket.send_buffer_size(),
        "SIP UDP socket bound"
    );
    tokio::net::UdpSocket::from_std(socket.into())
}

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
                let socket =
                    bind_udp(l.addr).map_err(|e| SipError::Bind(format!("udp:{}: {e}", l.addr)))?;
                let conn = UdpConnection::from_socket(
                    std::sync::Arc::new(socket),
                    None,
                    Some(cancel.child_token()),
                )
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

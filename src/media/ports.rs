//! The RTP port pool: even ports for RTP, the next odd port for RTCP
//! (RFC 3550 §11). A pair goes back to the pool when its [`PortPair`] drops.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use super::MediaError;

/// A pool of even/odd UDP port pairs in `[low, high]`.
pub struct PortPool {
    low: u16,
    high: u16,
    bind_ip: IpAddr,
    state: Mutex<PoolState>,
}

struct PoolState {
    next: u16,
    used: HashSet<u16>,
}

/// A bound RTP/RTCP socket pair. Dropping it closes both sockets and
/// returns the ports to the pool.
pub struct PortPair {
    /// The RTP (even) port.
    pub port: u16,
    /// RTP socket.
    pub rtp: UdpSocket,
    /// RTCP socket (port + 1).
    pub rtcp: UdpSocket,
    // Declared last: dropped after the sockets are closed.
    _lease: Lease,
}

struct Lease {
    pool: Arc<PortPool>,
    port: u16,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pool.state.lock() {
            s.used.remove(&self.port);
        }
    }
}

impl PortPool {
    /// A pool over `[low, high]` (low even) binding on `bind_ip`.
    pub fn new(low: u16, high: u16, bind_ip: IpAddr) -> Arc<Self> {
        Arc::new(PortPool {
            low,
            high,
            bind_ip,
            state: Mutex::new(PoolState {
                next: low,
                used: HashSet::new(),
            }),
        })
    }

    /// Number of pairs currently leased.
    pub fn in_use(&self) -> usize {
        self.state.lock().map(|s| s.used.len()).unwrap_or(0)
    }

    /// Total number of pairs in the range.
    pub fn capacity(&self) -> usize {
        usize::from((self.high - self.low).div_ceil(2))
    }

    fn reserve(&self) -> Option<u16> {
        let mut s = self.state.lock().ok()?;
        for _ in 0..self.capacity() {
            let p = s.next;
            s.next = if p.saturating_add(3) > self.high {
                self.low
            } else {
                p + 2
            };
            if p.checked_add(1).is_some_and(|o| o <= self.high) && s.used.insert(p) {
                return Some(p);
            }
        }
        None
    }

    fn release(&self, port: u16) {
        if let Ok(mut s) = self.state.lock() {
            s.used.remove(&port);
        }
    }

    /// Leases and binds the next free pair. Ports another process holds are
    /// skipped; the search is bounded by the size of the range.
    pub async fn allocate(self: &Arc<Self>) -> Result<PortPair, MediaError> {
        for _ in 0..self.capacity() {
            let Some(port) = self.reserve() else { break };
            let rtp = UdpSocket::bind(SocketAddr::new(self.bind_ip, port)).await;
            let rtcp = UdpSocket::bind(SocketAddr::new(self.bind_ip, port + 1)).await;
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => {
                    return Ok(PortPair {
                        port,
                        rtp,
                        rtcp,
                        _lease: Lease {
                            pool: self.clone(),
                            port,
                        },
                    });
                }
                _ => self.release(port),
            }
        }
        Err(MediaError::PortsExhausted(format!(
            "{}-{}",
            self.low, self.high
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pairs_are_even_and_return_to_pool() {
        let pool = PortPool::new(41000, 41005, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(pool.capacity(), 3);
        let a = pool.allocate().await.expect("a");
        let b = pool.allocate().await.expect("b");
        let c = pool.allocate().await.expect("c");
        assert!(a.port % 2 == 0 && b.port % 2 == 0 && c.port % 2 == 0);
        assert!(pool.allocate().await.is_err());
        assert_eq!(pool.in_use(), 3);
        drop(b);
        assert_eq!(pool.in_use(), 2);
        let d = pool.allocate().await.expect("d");
        assert_eq!(d.rtcp.local_addr().expect("addr").port(), d.port + 1);
        drop((a, c, d));
        assert_eq!(pool.in_use(), 0);
    }
}

//! The runtime edge: the only module that names async-std (sockets and timers).
//!
//! Everything else in the crate is generic over `futures::io`, so moving to smol/async-io is a
//! change to this file alone.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;

pub use async_std::net::{TcpStream, ToSocketAddrs, UdpSocket};

/// A resettable timer (async-io's, the reactor async-std runs on).
pub(crate) use async_io::Timer;

/// Waits for `duration`.
pub(crate) async fn sleep(duration: Duration) {
    async_std::task::sleep(duration).await;
}

use crate::{Error, ErrorKind, Result};

/// Opens a TCP connection with a deadline and Nagle's algorithm off (RDP input PDUs are
/// small and latency-sensitive).
///
/// ```no_run
/// # async_std::task::block_on(async {
/// use std::time::Duration;
/// let tcp = async_rdp::net::connect("127.0.0.1:3389", Duration::from_secs(5)).await?;
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
///
/// # Cancel safety
///
/// Cancel safe: dropping the future abandons the connection attempt.
pub async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let stream = with_timeout(timeout, "tcp connect", async {
        TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io("tcp connect", e).with_detail(addr.to_owned()))
    })
    .await?;
    stream.set_nodelay(true).map_err(|e| Error::io("tcp connect", e))?;
    Ok(stream)
}

/// Runs `future`, failing with [`ErrorKind::Timeout`] in `context` if it takes longer than
/// `timeout`. The future is dropped when the timer fires.
///
/// # Cancel safety
///
/// As cancel safe as `future` is: when the timer fires, `future` is dropped mid-way.
pub async fn with_timeout<T>(
    timeout: Duration,
    context: &'static str,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let timer = async_std::task::sleep(timeout)
        .map(|()| Err(Error::new(ErrorKind::Timeout, context).with_detail(format!("no answer within {timeout:?}"))));
    futures::pin_mut!(future, timer);
    futures::future::select(future, timer).await.factor_first().0
}

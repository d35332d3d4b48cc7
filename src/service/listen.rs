//! Admission of connections to both servers: a connection limit, and deadlines for clients
//! that connect and then send nothing (or too little), so idle or slow sockets cannot pile up
//! to the file-descriptor limit and take `/healthz` or KEDA's calls down with them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The HTTP/2 client preface every gRPC connection starts with (RFC 9113 §3.4).
const H2_PREFACE_LEN: usize = 24;
/// How often a connection that sent part of its preface is looked at again.
const PREFACE_POLL: Duration = Duration::from_millis(20);

/// Default most gRPC connections at once (`--grpc-max-connections`). KEDA's operator opens one
/// per scaler address and TLS setting (the connection-pool key), so a handful at most; the
/// rest is room for probes and people.
pub const DEFAULT_GRPC_MAX_CONNECTIONS: usize = 16;
/// Default most concurrent HTTP/2 streams per gRPC connection
/// (`--grpc-max-concurrent-streams`), advertised in SETTINGS. KEDA multiplexes everything on
/// one connection: each `external-push` trigger holds a stream open and every RPC takes one
/// for its duration, so this must exceed the push triggers by a margin (16 x 512 streams, about
/// 80 MB, bounds the never-read streams a hostile client can hold).
pub const DEFAULT_GRPC_MAX_STREAMS: u32 = 512;
/// Default longest a new gRPC connection may take to send the HTTP/2 preface.
pub const GRPC_PREFACE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest gRPC request message: the 64 KiB metadata limit plus the names, with room.
pub const GRPC_MAX_MESSAGE_BYTES: usize = 256 << 10;
/// Default most admin HTTP connections at once (`--http-max-connections`).
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 256;
/// Default longest the admin server waits for a request's headers, and for the next request
/// on an idle keep-alive connection (hyper's header-read timeout covers both).
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection holding one of its server's connection slots for as long as it lives.
#[derive(Debug)]
pub struct Admitted<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
}

impl<T> Admitted<T> {
    /// Wraps `io`, holding `slot` until it is dropped.
    pub fn new(io: T, slot: OwnedSemaphorePermit) -> Self {
        Admitted { io, _slot: slot }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Admitted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Admitted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Admitted<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Accepts the next TCP connection that gets one of `slots`, closing those that arrive while
/// all are held (`limit` names the flag in the log), and backing off when accepting fails (out
/// of file descriptors and the like) rather than spinning. `None` once `shutdown` is cancelled.
pub async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    limit: &str,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, std::net::SocketAddr, OwnedSemaphorePermit)> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => return Some((tcp, peer, slot)),
                    Err(_) => debug!(%peer, "connection refused: {limit} reached"),
                },
                Err(e) => {
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Waits until `tcp` has sent the whole HTTP/2 preface (without consuming it).
async fn preface(tcp: &TcpStream) -> io::Result<()> {
    let mut buf = [0u8; H2_PREFACE_LEN];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if n >= H2_PREFACE_LEN {
            return Ok(());
        }
        tokio::time::sleep(PREFACE_POLL).await;
    }
}

/// Plain-text gRPC connections, admitted off the accept loop: at most `max` at once (more are
/// closed at once), each with TCP_NODELAY and dropped unless it sends the HTTP/2 preface
/// within `preface_timeout`.
pub fn grpc_plain(
    listener: TcpListener,
    max: usize,
    preface_timeout: Duration,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<Admitted<TcpStream>, io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(max.max(1)));
    tokio::spawn(async move {
        while let Some((tcp, peer, slot)) =
            accept(&listener, &slots, "--grpc-max-connections", &shutdown).await
        {
            // Small gRPC responses must not wait for Nagle's algorithm against the peer's
            // delayed ACK (a 40 ms stall on Linux).
            let _ = tcp.set_nodelay(true);
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(preface_timeout, preface(&tcp)).await {
                    Ok(Ok(())) => {
                        let _ = tx.send(Ok(Admitted::new(tcp, slot))).await;
                    }
                    _ => debug!(%peer, "gRPC connection closed: no HTTP/2 preface in time"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Serves `app` over HTTP/1.1 on `listener` until `shutdown`: at most `max` connections (more
/// are closed at once), and `header_timeout` for headers and between requests.
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    max: usize,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let slots = Arc::new(Semaphore::new(max.max(1)));
    while let Some((tcp, _peer, slot)) =
        accept(&listener, &slots, "--http-max-connections", &shutdown).await
    {
        let service = TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 << 10);
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(header_timeout, conn).await;
                }
            }
        });
    }
}

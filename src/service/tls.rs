//! gRPC over TLS (and mTLS) with certificates re-read from disk while serving.
//!
//! KEDA >= 2.16 (grpc-go >= 1.67) refuses TLS servers that do not negotiate ALPN `h2`, so the
//! configuration always advertises it. Each accepted connection takes the configuration that is
//! current at that moment, so a rotated Kubernetes Secret takes effect for new connections
//! without a restart; a broken rotation is refused and the previous certificates stay in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Makes ring the process-wide rustls crypto provider (idempotent). The scrape client and the
/// gRPC server configure ring explicitly; this covers every other HTTPS client in the process
/// (reqwest without a provider of its own refuses to build otherwise).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A certificate file set could not be turned into a server configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was missing or malformed.
        what: String,
    },
    /// rustls refused the certificates (for example a key that does not match).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Where the server's certificate material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn read_all(&self) -> Result<Vec<Vec<u8>>, TlsError> {
        let mut out = vec![read(&self.cert)?, read(&self.key)?];
        if let Some(ca) = &self.client_ca {
            out.push(read(ca)?);
        }
        Ok(out)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_err(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Builds a server configuration from file contents (`[cert, key, client_ca?]`).
fn build(files: &TlsFiles, contents: &[Vec<u8>]) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&contents[0])
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&files.cert, format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_err(&files.cert, "no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_slice(&contents[1])
        .map_err(|e| pem_err(&files.key, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (&files.client_ca, contents.get(2)) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| pem_err(path, format!("bad CA PEM: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| pem_err(path, format!("unusable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(pem_err(path, "no CERTIFICATE block"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The current server configuration and what it was built from.
pub struct TlsState {
    files: TlsFiles,
    current: RwLock<(Vec<Vec<u8>>, Arc<ServerConfig>)>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What a reload check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were.
    Unchanged,
    /// New certificates are in use for new connections.
    Reloaded,
    /// The files changed but are unusable; the previous certificates stay in use.
    Rejected(String),
}

impl TlsState {
    /// Loads the files once; an error here is a startup error.
    pub fn load(files: TlsFiles) -> Result<TlsState, TlsError> {
        let contents = files.read_all()?;
        let config = build(&files, &contents)?;
        Ok(TlsState {
            files,
            current: RwLock::new((contents, config)),
        })
    }

    /// The configuration for the next connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(g) => g.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Re-reads the files and swaps the configuration if they changed and are usable.
    /// Contents, not modification times, are compared: Kubernetes swaps Secret volumes through
    /// a symlink, which leaves the files' own times unchanged.
    pub fn reload_if_changed(&self) -> Reload {
        let contents = match self.files.read_all() {
            Ok(c) => c,
            Err(e) => return Reload::Rejected(e.to_string()),
        };
        {
            let current = match self.current.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if current.0 == contents {
                return Reload::Unchanged;
            }
        }
        match build(&self.files, &contents) {
            Ok(config) => {
                let mut current = match self.current.write() {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = (contents, config);
                Reload::Reloaded
            }
            Err(e) => Reload::Rejected(e.to_string()),
        }
    }

    /// Checks the files every `period` until `shutdown`, logging what changed and reporting
    /// each reload to `on_event`.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        period: Duration,
        shutdown: CancellationToken,
        on_event: impl Fn(TlsEvent) + Send + Sync + 'static,
    ) {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match state.reload_if_changed() {
                    Reload::Unchanged => {}
                    Reload::Reloaded => {
                        on_event(TlsEvent::Reloaded);
                        info!(cert = %state.files.cert.display(), "TLS certificates reloaded")
                    }
                    Reload::Rejected(why) => {
                        on_event(TlsEvent::ReloadRejected);
                        warn!(%why, "TLS certificate files changed but are unusable; keeping the previous ones")
                    }
                }
            }
        });
    }
}

/// What happened on the TLS side, for the service to count (this module does no telemetry of
/// its own: it reports, the shell counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsEvent {
    /// A client's handshake failed (wrong CA, no client certificate, plain text on the port).
    HandshakeFailed,
    /// A client did not finish its handshake in time.
    HandshakeTimeout,
    /// Rotated certificate files were loaded.
    Reloaded,
    /// Changed certificate files were unusable; the previous ones keep serving.
    ReloadRejected,
}

impl TlsEvent {
    /// Every event, for metric label sets.
    pub const ALL: [TlsEvent; 4] = [
        TlsEvent::HandshakeFailed,
        TlsEvent::HandshakeTimeout,
        TlsEvent::Reloaded,
        TlsEvent::ReloadRejected,
    ];

    /// Stable label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsEvent::HandshakeFailed => "handshake_failed",
            TlsEvent::HandshakeTimeout => "handshake_timeout",
            TlsEvent::Reloaded => "reloaded",
            TlsEvent::ReloadRejected => "reload_rejected",
        }
    }
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop, so a slow or
/// hostile client cannot stall others. Yields established streams until `shutdown`.
pub fn incoming(
    listener: TcpListener,
    state: Arc<TlsState>,
    handshake_timeout: Duration,
    max_connections: usize,
    shutdown: CancellationToken,
    on_event: impl Fn(TlsEvent) + Clone + Send + Sync + 'static,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<crate::service::listen::Admitted<TlsStream<TcpStream>>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    tokio::spawn(async move {
        while let Some((tcp, peer, slot)) =
            crate::service::listen::accept(&listener, &slots, "--grpc-max-connections", &shutdown)
                .await
        {
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(state.config());
            let tx = tx.clone();
            let on_event = on_event.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx
                            .send(Ok(crate::service::listen::Admitted::new(stream, slot)))
                            .await;
                    }
                    Ok(Err(e)) => {
                        on_event(TlsEvent::HandshakeFailed);
                        debug!(%peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => {
                        on_event(TlsEvent::HandshakeTimeout);
                        debug!(%peer, "TLS handshake timed out")
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

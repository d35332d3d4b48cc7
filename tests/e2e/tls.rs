//! gRPC over TLS and mTLS with real TLS clients: ALPN `h2`, client-certificate verification,
//! wrong CA, missing client certificate, plain-text refused, certificates rotated on disk.

use std::sync::Arc;
use std::time::Duration;

use keda_llm_scaler::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use keda_llm_scaler::service::serve::{ServeOptions, TlsOptions};
use keda_llm_scaler::service::tls::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::common::{Scaler, so_ref, temp_dir};

pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().expect("ca key");
    let cert = p.self_signed(&key).expect("self-sign ca");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// (certificate PEM, key PEM) signed by `ca`.
pub fn leaf(ca: &Ca, sans: &[&str], client: bool) -> (String, String) {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("leaf params");
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().expect("leaf key");
    let cert = p.signed_by(&key, &ca.issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

async fn tls_client(
    addr: std::net::SocketAddr,
    trust: &str,
    identity: Option<&(String, String)>,
) -> Result<ExternalScalerClient<Channel>, String> {
    let mut cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trust))
        .domain_name("localhost");
    if let Some((c, k)) = identity {
        cfg = cfg.identity(Identity::from_pem(c, k));
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(cfg)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(ExternalScalerClient::new(channel))
}

async fn spec_call(client: Result<ExternalScalerClient<Channel>, String>) -> Result<(), String> {
    let mut c = client?;
    let r = so_ref("tls-so", &[("targets", "127.0.0.1:1")]);
    c.get_metric_spec(r)
        .await
        .map(|_| ())
        .map_err(|s| s.to_string())
}

/// The ALPN protocol a raw rustls client negotiates with the server.
async fn negotiated_alpn(
    addr: std::net::SocketAddr,
    trust: &str,
    identity: &(String, String),
) -> Option<Vec<u8>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(trust.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let chain = vec![CertificateDer::from_pem_slice(identity.0.as_bytes()).expect("client cert")];
    let key = PrivateKeyDer::from_pem_slice(identity.1.as_bytes()).expect("client key");
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client auth");
    // What grpc-go (KEDA >= 2.16) offers.
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    conn.get_ref().1.alpn_protocol().map(|p| p.to_vec())
}

#[tokio::test]
async fn mtls_serves_keda_and_refuses_everyone_else() {
    let server_ca = ca("scaler-ca");
    let client_ca = ca("keda-client-ca");
    let stranger_ca = ca("someone-else");
    let (cert, key) = leaf(&server_ca, &["localhost"], false);
    let keda = leaf(&client_ca, &["keda-operator"], true);
    let stranger = leaf(&stranger_ca, &["keda-operator"], true);

    let dir = temp_dir("mtls");
    let files = TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        client_ca: Some(dir.join("ca.crt")),
    };
    std::fs::write(&files.cert, &cert).expect("write cert");
    std::fs::write(&files.key, &key).expect("write key");
    std::fs::write(files.client_ca.as_ref().expect("ca path"), &client_ca.pem).expect("write ca");

    let scaler = Scaler::start_with(ServeOptions {
        first_decision_wait: Duration::from_millis(200),
        tls: Some(TlsOptions {
            files: files.clone(),
            reload_every: Duration::from_millis(100),
        }),
        ..ServeOptions::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = scaler.grpc;

    // KEDA's view: trusts the server CA, presents its client certificate, offers h2.
    spec_call(tls_client(addr, &server_ca.pem, Some(&keda)).await)
        .await
        .expect("mTLS client is served");
    assert_eq!(
        negotiated_alpn(addr, &server_ca.pem, &keda)
            .await
            .as_deref(),
        Some(&b"h2"[..]),
        "grpc-go >= 1.67 requires ALPN h2"
    );

    let wrong_ca = spec_call(tls_client(addr, &stranger_ca.pem, Some(&keda)).await).await;
    assert!(
        wrong_ca.is_err(),
        "a client that does not trust the server CA must fail"
    );
    let no_cert = spec_call(tls_client(addr, &server_ca.pem, None).await).await;
    assert!(
        no_cert.is_err(),
        "a client without a certificate must be refused"
    );
    let wrong_client = spec_call(tls_client(addr, &server_ca.pem, Some(&stranger)).await).await;
    assert!(
        wrong_client.is_err(),
        "a client certificate from another CA must be refused"
    );
    let plain = spec_call(
        ExternalScalerClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| e.to_string()),
    )
    .await;
    assert!(
        plain.is_err(),
        "plain-text gRPC must not be served on a TLS port"
    );

    // Rotation: a new server certificate from a new CA is picked up without a restart.
    let next_ca = ca("scaler-ca-2");
    let (cert2, key2) = leaf(&next_ca, &["localhost"], false);
    std::fs::write(&files.key, &key2).expect("rotate key");
    std::fs::write(&files.cert, &cert2).expect("rotate cert");
    let mut rotated = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if spec_call(tls_client(addr, &next_ca.pem, Some(&keda)).await)
            .await
            .is_ok()
        {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "rotated certificate not served within 5 s");
    assert!(
        spec_call(tls_client(addr, &server_ca.pem, Some(&keda)).await)
            .await
            .is_err(),
        "the old certificate is no longer presented"
    );

    // A broken rotation (key that does not match) is refused; the last good one keeps serving.
    std::fs::write(&files.key, &key).expect("mismatched key");
    tokio::time::sleep(Duration::from_millis(400)).await;
    spec_call(tls_client(addr, &next_ca.pem, Some(&keda)).await)
        .await
        .expect("previous certificate still served after a bad rotation");
    let metrics = scaler.http_get("/metrics").await;
    for kind in ["reloaded", "reload_rejected", "handshake_failed"] {
        assert!(
            metrics.contains(&format!(
                "keda_llm_scaler_tls_events_total{{kind=\"{kind}\"}}"
            )),
            "{kind} not counted:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("tls"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    scaler.shutdown.cancel();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_certificate_files_stop_the_server_before_it_serves() {
    let dir = temp_dir("badtls");
    let files = TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        client_ca: None,
    };
    std::fs::write(&files.cert, "not a certificate").expect("write");
    std::fs::write(&files.key, "not a key").expect("write");
    let scaler = Scaler::start_with(ServeOptions {
        tls: Some(TlsOptions {
            files,
            reload_every: Duration::from_secs(10),
        }),
        ..ServeOptions::default()
    })
    .await;
    let err = scaler
        .task
        .await
        .expect("join")
        .expect_err("must refuse to start");
    let text = format!("{err:#}");
    assert!(text.contains("tls.crt"), "error names the file: {text}");
    let _ = std::fs::remove_dir_all(dir);
}

//! Serving TLS and mutual TLS (rustls with the ring provider).
//!
//! [`server_config`] turns PEM files into a [`ServerConfig`] once, at start-up, so that a bad certificate, a key
//! that does not belong to it or an unusable client CA bundle stops the gateway before it binds a port, with one
//! line naming the file at fault. The config offers ALPN `h2` (gRPC) and `http/1.1`; with a client CA bundle it
//! requires every client to present a certificate issued by one of those CAs (mTLS).
//!
//! Errors never quote file contents: a private key must not end up in a log line because it sat in the wrong file.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio_rustls::{
    rustls::{
        self,
        crypto::CryptoProvider,
        pki_types::{
            pem::{self, PemObject},
            CertificateDer, PrivateKeyDer,
        },
        server::{danger::ClientCertVerifier, WebPkiClientVerifier},
        RootCertStore, ServerConfig,
    },
    TlsAcceptor,
};

/// ALPN protocols offered, most preferred first: gRPC needs HTTP/2; HTTP/1.1 stays available for plain HTTP
/// clients (health probes, curl) on the same port.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Role names used in error messages, so the operator knows which flag points at the bad file.
const CERTIFICATE_FILE: &str = "TLS certificate";
const KEY_FILE: &str = "TLS private key";
const CLIENT_CA_FILE: &str = "client CA bundle";

/// Why TLS cannot be set up; each variant names the file at fault and what is wrong with it, in one line, without
/// quoting the file's contents (which may be a private key).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be opened or read (missing, no permission, a directory, …).
    #[error("cannot read the {what} file {}: {error}", path.display())]
    Unreadable {
        /// Which file this is (e.g. "TLS certificate").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },
    /// A file has PEM sections, but one of them is broken.
    #[error("the {what} file {} is not valid PEM: {problem}", path.display())]
    MalformedPem {
        /// Which file this is (e.g. "TLS certificate").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is broken (a fixed description, never the offending text).
        problem: &'static str,
    },
    /// The certificate file holds no `CERTIFICATE` PEM section.
    #[error("the TLS certificate file {} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The certificate in the file cannot be parsed.
    #[error("the certificate in {} cannot be used: {reason}", path.display())]
    InvalidCertificate {
        /// The certificate file.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The key file holds no PKCS#8, PKCS#1 or SEC1 private key.
    #[error(
        "the TLS private key file {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is of a kind the ring provider cannot sign with (or is corrupt).
    #[error("the private key in {} cannot be used: {reason}", path.display())]
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// rustls' reason (never key material).
        reason: String,
    },
    /// The private key is not the key of the certificate, so no handshake could ever succeed.
    #[error(
        "the private key in {} does not match the certificate in {}",
        key_path.display(),
        cert_path.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
    },
    /// The client CA bundle cannot be used to verify client certificates.
    #[error("the client CA bundle {} cannot be used: {problem}", path.display())]
    BadCaBundle {
        /// The CA bundle file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The crypto provider refused the configuration (not expected with ring's defaults).
    #[error("the TLS crypto provider cannot build a server configuration: {reason}")]
    Provider {
        /// rustls' reason.
        reason: String,
    },
}

/// The gRPC port's TLS: the server configuration, and whether it asks clients for certificates (mTLS).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// What the acceptor uses.
    pub config: Arc<ServerConfig>,
    /// Clients must present a certificate from the client CA bundle.
    pub verifies_clients: bool,
}

impl ServerTls {
    /// `"TLS"` or `"mTLS"`, for the start-up line.
    pub fn mode(&self) -> &'static str {
        if self.verifies_clients {
            "mTLS"
        } else {
            "TLS"
        }
    }
}

/// Builds the gateway's TLS server configuration from PEM files, failing at start-up rather than at the first
/// handshake.
///
/// `cert_path` holds the certificate chain (leaf first), `key_path` the leaf's private key (PKCS#8, PKCS#1 or
/// SEC1). With `client_ca_path`, clients must present a certificate chaining to one of the CAs in that bundle
/// (mTLS); without it, clients are not asked for certificates.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
    client_ca_path: Option<&Path>,
) -> Result<ServerTls, TlsError> {
    let chain = read_certificates(CERTIFICATE_FILE, cert_path)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = read_private_key(key_path)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Provider {
            reason: error.to_string(),
        })?;
    let builder = match client_ca_path {
        Some(ca_path) => builder.with_client_cert_verifier(client_verifier(ca_path, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|error| certified_key_error(error, cert_path, key_path))?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    tracing::debug!(
        cert = %cert_path.display(),
        mtls = client_ca_path.is_some(),
        "TLS server configuration loaded"
    );
    Ok(ServerTls {
        config: Arc::new(config),
        verifies_clients: client_ca_path.is_some(),
    })
}

/// Wraps a server configuration in an acceptor, so the accept loop can turn each TCP stream into a TLS stream.
pub fn acceptor(tls: ServerTls) -> TlsAcceptor {
    TlsAcceptor::from(tls.config)
}

/// A verifier that requires a client certificate issued by one of the CAs in `path`.
fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let bad_bundle = |problem: String| TlsError::BadCaBundle {
        path: path.to_owned(),
        problem,
    };
    let certificates = read_certificates(CLIENT_CA_FILE, path)?;
    if certificates.is_empty() {
        return Err(bad_bundle("no PEM certificate in it".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for (index, certificate) in certificates.into_iter().enumerate() {
        roots.add(certificate).map_err(|error| {
            bad_bundle(format!(
                "certificate {} is not a usable trust anchor ({error})",
                index + 1
            ))
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| bad_bundle(error.to_string()))
}

/// Every `CERTIFICATE` section of a PEM file (other sections are skipped).
fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_error(what, path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(what, path, error))
}

/// The first private key section of a PEM file, whatever its encoding.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => pem_error(KEY_FILE, path, other),
    })
}

/// Maps a PEM reading error to a `TlsError` without its text: some `pem::Error`s quote the offending line, which
/// may be key material.
fn pem_error(what: &'static str, path: &Path, error: pem::Error) -> TlsError {
    let problem = match error {
        pem::Error::Io(error) => {
            return TlsError::Unreadable {
                what,
                path: path.to_owned(),
                error,
            }
        }
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        pem::Error::NoItemsFound => "no PEM section of the expected kind",
        _ => "the PEM cannot be parsed",
    };
    TlsError::MalformedPem {
        what,
        path: path.to_owned(),
        problem,
    }
}

/// Attributes a `with_single_cert` failure to the certificate or the key file.
fn certified_key_error(error: rustls::Error, cert_path: &Path, key_path: &Path) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert_path: cert_path.to_owned(),
                key_path: key_path.to_owned(),
            }
        }
        error @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            TlsError::InvalidCertificate {
                path: cert_path.to_owned(),
                reason: error.to_string(),
            }
        }
        // Loading the key is the only other step: ring could not parse it or does not support its algorithm.
        error => TlsError::UnusableKey {
            path: key_path.to_owned(),
            reason: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };
    use tokio_rustls::{
        rustls::{
            pki_types::ServerName, ClientConfig, ClientConnection, Connection, ServerConnection,
        },
        TlsConnector,
    };

    use super::*;

    /// A directory of its own for each test, removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "kgen-tls-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A leaf certificate for `names` issued by `ca`: (certificate PEM, PKCS#8 key PEM, certificate DER).
    fn new_leaf(
        ca: &CertifiedIssuer<'static, KeyPair>,
        names: &[&str],
    ) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, ca).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    /// A server CA, a server certificate for localhost, a separate client CA and a client certificate it issued,
    /// all written to a fresh directory.
    struct Pki {
        dir: TempDir,
        server_ca: CertifiedIssuer<'static, KeyPair>,
        cert: PathBuf,
        key: PathBuf,
        client_ca: PathBuf,
        client_chain: Vec<CertificateDer<'static>>,
        client_key_pem: String,
    }

    impl Pki {
        fn new() -> Self {
            let dir = TempDir::new();
            let server_ca = new_ca("test server CA");
            let (server_cert, server_key, _) = new_leaf(&server_ca, &["localhost", "127.0.0.1"]);
            // The chain file holds the leaf then its issuer, as operators usually ship it.
            let cert = dir.write("server.pem", &format!("{server_cert}{}", server_ca.pem()));
            let key = dir.write("server.key", &server_key);
            let client_issuer = new_ca("test client CA");
            let client_ca = dir.write("client-ca.pem", &client_issuer.pem());
            let (_, client_key_pem, client_der) = new_leaf(&client_issuer, &["game-backend"]);
            Self {
                dir,
                server_ca,
                cert,
                key,
                client_ca,
                client_chain: vec![client_der],
                client_key_pem,
            }
        }

        fn client_config(&self, with_certificate: bool) -> Arc<ClientConfig> {
            let mut roots = RootCertStore::empty();
            roots.add(self.server_ca.der().clone()).unwrap();
            let builder = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
            let config = if with_certificate {
                let key = PrivateKeyDer::from_pem_slice(self.client_key_pem.as_bytes()).unwrap();
                builder
                    .with_client_auth_cert(self.client_chain.clone(), key)
                    .unwrap()
            } else {
                builder.with_no_client_auth()
            };
            Arc::new(config)
        }
    }

    /// Runs a handshake between the two configs in memory; the first error either side raises.
    fn handshake_in_memory(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = Connection::from(ClientConnection::new(client, name)?);
        let mut server = Connection::from(ServerConnection::new(server)?);
        for _ in 0..16 {
            transfer(&mut client, &mut server)?;
            transfer(&mut server, &mut client)?;
            if !client.is_handshaking() && !server.is_handshaking() {
                // Let the server see the client's last flight (its certificate, in TLS 1.3).
                transfer(&mut client, &mut server)?;
                return Ok(());
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    }

    fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).unwrap();
        }
        let mut remaining = &bytes[..];
        while !remaining.is_empty() {
            to.read_tls(&mut remaining).unwrap();
            to.process_new_packets()?;
        }
        Ok(())
    }

    #[test]
    fn a_valid_certificate_and_key_load_and_offer_h2_then_http1() {
        let pki = Pki::new();
        let config = server_config(&pki.cert, &pki.key, None).unwrap().config;
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        handshake_in_memory(config, pki.client_config(false)).unwrap();
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_rejected() {
        let pki = Pki::new();
        let (_, other_key, _) = new_leaf(&pki.server_ca, &["localhost"]);
        let other_key = pki.dir.write("other.key", &other_key);
        let err = server_config(&pki.cert, &other_key, None).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(other_key.to_str().unwrap()), "{message}");
        assert!(message.contains(pki.cert.to_str().unwrap()), "{message}");
    }

    #[test]
    fn a_missing_file_is_rejected_with_its_path_in_the_message() {
        let pki = Pki::new();
        let missing = pki.dir.0.join("does-not-exist.pem");
        for (cert, key, ca) in [
            (&missing, &pki.key, None),
            (&pki.cert, &missing, None),
            (&pki.cert, &pki.key, Some(missing.as_path())),
        ] {
            let err = server_config(cert, key, ca).unwrap_err();
            assert!(matches!(err, TlsError::Unreadable { .. }), "{err:?}");
            let message = err.to_string();
            assert!(message.contains(missing.to_str().unwrap()), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn a_file_with_no_pem_certificate_is_rejected() {
        let pki = Pki::new();
        let not_pem = pki.dir.write("not-pem.txt", "not a certificate\n");
        let err = server_config(&not_pem, &pki.key, None).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(err.to_string().contains(not_pem.to_str().unwrap()));

        // The key file given as the certificate: no certificate in it, and none of the key quoted.
        let err = server_config(&pki.key, &pki.key, None).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_file_with_no_private_key_is_rejected() {
        let pki = Pki::new();
        let err = server_config(&pki.cert, &pki.cert, None).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err:?}");
        assert!(err.to_string().contains(pki.cert.to_str().unwrap()));
    }

    #[test]
    fn a_broken_pem_key_is_rejected_without_quoting_it() {
        let pki = Pki::new();
        let broken = pki.dir.write(
            "broken.key",
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n",
        );
        let err = server_config(&pki.cert, &broken, None).unwrap_err();
        assert!(matches!(err, TlsError::MalformedPem { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn a_client_ca_bundle_without_certificates_is_rejected() {
        let pki = Pki::new();
        let empty = pki.dir.write("empty-ca.pem", "# nothing here\n");
        let err = server_config(&pki.cert, &pki.key, Some(&empty)).unwrap_err();
        assert!(matches!(err, TlsError::BadCaBundle { .. }), "{err:?}");
        assert!(err.to_string().contains(empty.to_str().unwrap()));
    }

    #[test]
    fn with_a_client_ca_the_config_requires_a_client_certificate_from_that_ca() {
        let pki = Pki::new();
        let config = server_config(&pki.cert, &pki.key, Some(&pki.client_ca))
            .unwrap()
            .config;

        let without = handshake_in_memory(config.clone(), pki.client_config(false)).unwrap_err();
        assert!(
            matches!(without, rustls::Error::NoCertificatesPresented),
            "{without:?}"
        );
        handshake_in_memory(config.clone(), pki.client_config(true)).unwrap();

        // A certificate from another CA (here the server's) is refused too.
        let (_, stranger_key, stranger_der) = new_leaf(&pki.server_ca, &["stranger"]);
        let mut roots = RootCertStore::empty();
        roots.add(pki.server_ca.der().clone()).unwrap();
        let stranger =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    vec![stranger_der],
                    PrivateKeyDer::from_pem_slice(stranger_key.as_bytes()).unwrap(),
                )
                .unwrap();
        let err = handshake_in_memory(config, Arc::new(stranger)).unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
    }

    #[test]
    fn without_a_client_ca_no_client_certificate_is_needed() {
        let pki = Pki::new();
        let config = server_config(&pki.cert, &pki.key, None).unwrap().config;
        handshake_in_memory(config, pki.client_config(false)).unwrap();
    }

    #[tokio::test]
    async fn an_mtls_handshake_over_tcp_succeeds_with_a_client_certificate_and_fails_without() {
        let pki = Pki::new();
        let tls = acceptor(server_config(&pki.cert, &pki.key, Some(&pki.client_ca)).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                match tls.accept(stream).await {
                    Ok(mut stream) => {
                        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        stream.write_all(b"hello").await.unwrap();
                        stream.shutdown().await.unwrap();
                        outcomes.push(Ok(alpn));
                    }
                    Err(error) => outcomes.push(Err(error.to_string())),
                }
            }
            outcomes
        });

        let client = async {
            // With a certificate from the client CA: the handshake completes and data flows.
            let mut config = (*pki.client_config(true)).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            let connector = TlsConnector::from(Arc::new(config));
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut stream = connector.connect(name.clone(), tcp).await.unwrap();
            let mut greeting = Vec::new();
            stream.read_to_end(&mut greeting).await.unwrap();
            assert_eq!(greeting, b"hello");

            // Without one: in TLS 1.3 the client may finish first; the server's alert then fails its first read.
            let connector = TlsConnector::from(pki.client_config(false));
            let tcp = TcpStream::connect(addr).await.unwrap();
            let refused = match connector.connect(name, tcp).await {
                Err(_) => true,
                Ok(mut stream) => stream.read_to_end(&mut Vec::new()).await.is_err(),
            };
            assert!(refused, "a client without a certificate was served");
        };
        tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .unwrap();

        let outcomes = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcomes[0], Ok(Some(b"h2".to_vec())));
        let refusal = outcomes[1].as_ref().unwrap_err();
        assert!(refusal.contains("no certificates"), "{refusal}");
    }
}

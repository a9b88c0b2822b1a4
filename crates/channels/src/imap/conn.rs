//! The connection under the IMAP client: TCP, TLS (implicit or STARTTLS), SASL PLAIN, the
//! greeting, and the reconnect backoff. Does not log in nor read mail.

use super::*;

/// SASL PLAIN (RFC 4616): `\0user\0password` in answer to the empty challenge.
pub(super) struct PlainAuth {
    pub(super) username: String,
    pub(super) password: String,
}

impl async_imap::Authenticator for PlainAuth {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut r = Vec::with_capacity(self.username.len() + self.password.len() + 2);
        r.push(0);
        r.extend_from_slice(self.username.as_bytes());
        r.push(0);
        r.extend_from_slice(self.password.as_bytes());
        r
    }
}

/// The transport under the IMAP client: plain TCP or TLS over TCP.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Conn::Plain",
            Conn::Tls(_) => "Conn::Tls",
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS client settings: the system's CA certificates plus `tls_ca_file`; ring provider
/// (as lettre uses), TLS 1.2 and 1.3.
pub fn tls_connector(cfg: &ImapConfig) -> anyhow::Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(p) = &cfg.tls_ca_file {
        let certs = CertificateDer::pem_file_iter(p)
            .with_context(|| format!("reading tls_ca_file {}", p.display()))?;
        for c in certs {
            let c = c.with_context(|| format!("parsing tls_ca_file {}", p.display()))?;
            roots
                .add(c)
                .with_context(|| format!("a certificate in {} is not usable", p.display()))?;
        }
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "no CA certificates: the system has none and tls_ca_file is not set"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// TCP, then TLS as configured (implicit, or STARTTLS after the greeting); the greeting read.
pub(super) async fn connect(
    cfg: &ImapConfig,
    tls: Option<&TlsConnector>,
) -> Result<Client<Conn>, ImapError> {
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port)).await?;
    tcp.set_nodelay(true)?;
    let handshake = |tcp: TcpStream| async move {
        let connector = tls.ok_or_else(|| ImapError::Other("no TLS settings".into()))?;
        let name = rustls::pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| {
            ImapError::Other(format!("`{}` is not a TLS server name: {e}", cfg.host))
        })?;
        let s = connector.connect(name, tcp).await?;
        Ok::<_, ImapError>(Conn::Tls(Box::new(s)))
    };
    match cfg.tls {
        ImapTls::None => {
            let mut c = Client::new(Conn::Plain(tcp));
            greeting(&mut c).await?;
            Ok(c)
        }
        ImapTls::Tls => {
            let mut c = Client::new(handshake(tcp).await?);
            greeting(&mut c).await?;
            Ok(c)
        }
        ImapTls::StartTls => {
            let mut c = Client::new(Conn::Plain(tcp));
            greeting(&mut c).await?;
            c.run_command_and_check_ok("STARTTLS", None).await?;
            let Conn::Plain(tcp) = c.into_inner() else {
                return Err(ImapError::Other("STARTTLS on a TLS connection".into()));
            };
            // No greeting after STARTTLS.
            Ok(Client::new(handshake(tcp).await?))
        }
    }
}

pub(super) async fn greeting(c: &mut Client<Conn>) -> Result<(), ImapError> {
    match c.read_response().await? {
        Some(_) => Ok(()),
        None => Err(ImapError::ConnectionLost),
    }
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling from
/// `initial` up to `max`; `reset` after a good session.
pub(super) struct Backoff {
    initial: Duration,
    max: Duration,
    pub(super) next: Duration,
}

impl Backoff {
    pub(super) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    pub(super) fn reset(&mut self) {
        self.next = self.initial;
    }

    pub(super) fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        let spread = (d - half).as_millis() as u64;
        half + Duration::from_millis(random_u64() % (spread + 1))
    }
}

/// A random number for jitter, from the standard library's randomly keyed hasher.
pub(super) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

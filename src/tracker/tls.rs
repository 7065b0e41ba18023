//! TLS for `https` trackers with rustls (ring provider): the trust store
//! (the system's PEM bundle plus `--ca-file`s), the handshake, and
//! certificate problems told in plain words.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{ErrorKind, TrackerOptions};

/// Where Debian (and most Linux systems) keep the trusted CA bundle.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The system bundle: `SSL_CERT_FILE` when set (as OpenSSL does), else
/// [`SYSTEM_CA_FILE`].
pub fn system_ca_file() -> PathBuf {
    std::env::var_os("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_FILE))
}

type Key = (Vec<PathBuf>, bool, PathBuf);
static CONFIGS: Mutex<Vec<(Key, Arc<ClientConfig>)>> = Mutex::new(Vec::new());

/// Reads the certificates of a PEM file into `store`; returns how many
/// were added.
fn add_pem_file(path: &Path, store: &mut RootCertStore, strict: bool) -> Result<usize, String> {
    let iter =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in iter {
        match item {
            Ok(c) => certs.push(c),
            Err(e) if strict => return Err(format!("{}: {e}", path.display())),
            Err(e) => log::debug!("{}: skipped a PEM section: {e}", path.display()),
        }
    }
    let (added, ignored) = store.add_parsable_certificates(certs);
    if ignored > 0 {
        log::debug!(
            "{}: {ignored} certificates not usable as roots",
            path.display()
        );
    }
    if strict && added == 0 {
        return Err(format!(
            "{}: no usable certificate in this PEM file",
            path.display()
        ));
    }
    Ok(added)
}

/// The rustls configuration for `opts` (built once per set of CA files).
pub fn client_config(opts: &TrackerOptions) -> Result<Arc<ClientConfig>, ErrorKind> {
    let system = system_ca_file();
    let key: Key = (opts.ca_files.clone(), opts.system_roots, system.clone());
    let mut cache = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let mut roots = RootCertStore::empty();
    if opts.system_roots {
        match add_pem_file(&system, &mut roots, false) {
            Ok(n) => log::debug!("{n} trusted certificates from {}", system.display()),
            Err(e) => log::debug!("no system certificates: {e}"),
        }
    }
    for file in &opts.ca_files {
        add_pem_file(file, &mut roots, true)
            .map_err(|e| ErrorKind::Tls(format!("--ca-file {e}")))?;
    }
    if roots.is_empty() {
        return Err(ErrorKind::Tls(format!(
            "no trusted certificate authorities: {} is missing or empty (install the ca-certificates package, or give --ca-file)",
            system.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ErrorKind::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    cache.push((key, config.clone()));
    Ok(config)
}

/// Runs the TLS handshake over `tcp` (whose timeouts bound it).
pub fn handshake(
    tcp: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("host name '{host}': {e}"),
        )
    })?;
    let mut conn = ClientConnection::new(config, name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut tcp = tcp;
    // Each round trip moves the handshake on; a bounded number of rounds
    // (the socket's timeouts bound each one).
    for _ in 0..64 {
        if !conn.is_handshaking() {
            return Ok(StreamOwned::new(conn, tcp));
        }
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the TLS handshake",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("the TLS handshake does not finish"))
}

/// The plain-words message for a TLS error inside an IO error, if it is one.
pub fn describe_io_error(e: &std::io::Error, host: &str) -> Option<String> {
    let inner = e.get_ref()?;
    let tls = inner.downcast_ref::<rustls::Error>()?;
    Some(describe(tls, host))
}

fn date(t: &rustls::pki_types::UnixTime) -> String {
    crate::time::iso8601_utc(t.as_secs() as i64)
}

/// A TLS error in plain words.
pub fn describe(err: &rustls::Error, host: &str) -> String {
    match err {
        rustls::Error::InvalidCertificate(c) => {
            let what = match c {
                CertificateError::UnknownIssuer => "it is not trusted: unknown issuer (self-signed, or signed by a certificate authority that is not in the trust store; add a private CA with --ca-file)".to_string(),
                CertificateError::BadSignature => "its signature does not verify (bad signature)".into(),
                CertificateError::Expired => "it has expired".into(),
                CertificateError::ExpiredContext { time, not_after } => {
                    format!("it expired on {} (now {})", date(not_after), date(time))
                }
                CertificateError::NotValidYet => "it is not valid yet".into(),
                CertificateError::NotValidYetContext { time, not_before } => {
                    format!("it is not valid before {} (now {})", date(not_before), date(time))
                }
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    format!("it is not valid for the host name {host} (wrong host name)")
                }
                CertificateError::Revoked => "it has been revoked".into(),
                CertificateError::BadEncoding => "it is not a well-formed certificate".into(),
                other => format!("{other:?}"),
            };
            format!("the server's certificate was refused: {what}")
        }
        rustls::Error::AlertReceived(alert) => format!("the server sent TLS alert {alert:?}"),
        rustls::Error::NoCertificatesPresented => "the server presented no certificate".into(),
        rustls::Error::InvalidMessage(m) => format!("not a TLS server? ({m:?})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;

    #[test]
    fn certificate_problems_in_plain_words() {
        let bad = |c| describe(&rustls::Error::InvalidCertificate(c), "t.example");
        assert!(bad(CertificateError::UnknownIssuer).contains("unknown issuer"));
        assert!(bad(CertificateError::Expired).contains("expired"));
        let expired = bad(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_709_211_909)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(951_782_400)),
        });
        assert!(
            expired.contains("expired on 2000-02-29T00:00:00Z"),
            "{expired}"
        );
        assert!(bad(CertificateError::NotValidForName)
            .contains("not valid for the host name t.example"));
        assert!(bad(CertificateError::NotValidYet).contains("not valid yet"));
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(describe_io_error(&io, "h")
            .unwrap()
            .contains("unknown issuer"));
        assert!(describe_io_error(&std::io::Error::other("x"), "h").is_none());
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = std::env::temp_dir().join(format!("bt-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let opts = TrackerOptions {
            ca_files: vec![empty.clone(), dir.join("missing.pem")],
            system_roots: false,
            ..TrackerOptions::default()
        };
        let err = client_config(&opts).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no usable certificate"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

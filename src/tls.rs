//! TLS material the operator controls (`--tls-cert`/`--tls-key`, `--tls-self-signed`), checked
//! on the controller before anything changes: the certificate parses, is valid now, and the key
//! is the private half of its public key. The key only ever lives in a [`Secret`].

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use x509_parser::der_parser::ber::{BerObject, BerObjectContent};
use x509_parser::der_parser::parse_der;
use x509_parser::prelude::*;

use crate::error::Error;
use crate::host::Host;
use crate::secret::Secret;

/// A self-signed certificate closer than this to its expiry is generated anew.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// How long a generated self-signed certificate is valid.
pub const SELF_SIGNED_DAYS: i64 = 825;

/// What the plan shows of a certificate (never anything of the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, upper-case hex pairs joined by ':' (as `openssl x509 -fingerprint`).
    pub fingerprint: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
}

impl CertInfo {
    /// "subject CN=x, issuer CN=y, expires 2027-01-01 00:00:00 UTC, SHA-256 AB:CD:…"
    pub fn describe(&self) -> String {
        format!(
            "subject {}, issuer {}, expires {}, SHA-256 {}",
            self.subject,
            self.issuer,
            utc(self.not_after),
            self.fingerprint
        )
    }

    pub fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }

    /// Is `domain` one of the certificate's subjectAltNames (case-insensitive)?
    pub fn covers(&self, domain: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(domain))
    }
}

/// Where the certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--tls-cert FILE --tls-key FILE`.
    Files { cert: PathBuf, key: PathBuf },
    /// `--tls-self-signed`: generated in this run.
    SelfSignedNew,
    /// `--tls-self-signed`: the one already on the target, still valid for the domain.
    SelfSignedReused,
}

/// A certificate (PEM, possibly followed by its chain) and its private key.
#[derive(Debug, Clone)]
pub struct Material {
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret,
    pub info: CertInfo,
    pub origin: Origin,
}

/// The operator's choice on the command line (resolved into [`Material`] once the recipe's
/// paths are known, for the self-signed case).
#[derive(Debug, Clone)]
pub enum Choice {
    Files(Box<Material>),
    SelfSigned,
}

/// The TLS options of the command line, the given pair checked (exit 2 when refused).
pub fn choice(cli: &crate::cli::Cli) -> Result<Option<Choice>, Error> {
    match (&cli.tls_cert, &cli.tls_key, cli.tls_self_signed) {
        (Some(cert), Some(key), _) => {
            Ok(Some(Choice::Files(Box::new(load_files(cert, key, now())?))))
        }
        (_, _, true) => Ok(Some(Choice::SelfSigned)),
        _ => Ok(None),
    }
}

/// The run's certificate and key: the checked pair of `--tls-cert`/`--tls-key`, or the
/// self-signed one for `-H` (reused from the recipe's paths on the target, else generated).
pub fn resolve(
    opts: &crate::options::Options,
    host: &dyn Host,
    nginx: &crate::recipe::model::Nginx,
) -> Result<Option<Material>, Error> {
    match &opts.tls {
        None => Ok(None),
        Some(Choice::Files(m)) => Ok(Some((**m).clone())),
        Some(Choice::SelfSigned) => self_signed(
            host,
            Path::new(&nginx.tls_certificate),
            Path::new(&nginx.tls_key),
            &opts.domain,
            now(),
        )
        .map(Some),
    }
}

/// Where a self-signed certificate is, for the operator (on stderr).
pub fn note(m: &Material, cert_path: &str) -> Option<String> {
    let what = match m.origin {
        Origin::Files { .. } => return None,
        Origin::SelfSignedNew => "new self-signed certificate",
        Origin::SelfSignedReused => "self-signed certificate (kept: still valid)",
    };
    Some(format!(
        "TLS: {what} for {} at {cert_path} (valid until {}, SHA-256 {}); clients verify with it as their CA, e.g. curl --cacert {cert_path}",
        m.info.names.join(", "),
        utc(m.info.not_after),
        m.info.fingerprint
    ))
}

/// The public half of a key, comparable between a certificate and a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    /// The uncompressed (or compressed) EC point as it appears on the wire.
    Ec(Vec<u8>),
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(unix: i64) -> String {
    match ::time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// `--tls-cert CERT --tls-key KEY`: read both on the controller and refuse (exit 2) a pair
/// that is expired, not yet valid, or whose key does not belong to the certificate.
pub fn load_files(cert: &Path, key: &Path, now: i64) -> Result<Material, Error> {
    let read = |flag: &str, p: &Path| {
        std::fs::read(p).map_err(|e| Error::Usage(format!("{flag} {}: {e}", p.display())))
    };
    let cert_pem = read("--tls-cert", cert)?;
    let key_bytes = read("--tls-key", key)?;
    let key_text = String::from_utf8(key_bytes)
        .map_err(|_| Error::Usage(format!("--tls-key {}: not a PEM file", key.display())))?;
    let key_pem = Secret::new(key_text);
    let (info, cert_pub) = parse_cert(&cert_pem)
        .map_err(|e| Error::Usage(format!("--tls-cert {}: {e}", cert.display())))?;
    check_validity(&info, now)
        .map_err(|e| Error::Usage(format!("--tls-cert {}: {e}", cert.display())))?;
    let key_pub = parse_key(&key_pem)
        .map_err(|e| Error::Usage(format!("--tls-key {}: {e}", key.display())))?;
    if key_pub != cert_pub {
        return Err(Error::Usage(format!(
            "--tls-key {} does not match --tls-cert {} (the key is not the private half of the certificate's public key)",
            key.display(),
            cert.display()
        )));
    }
    Ok(Material {
        cert_pem,
        key_pem,
        info,
        origin: Origin::Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
    })
}

/// `--tls-self-signed`: the self-signed certificate already at `cert_path`/`key_path` on the
/// target when it is valid for `domain` for more than [`RENEW_BEFORE_DAYS`] and its key
/// matches; else a new one (ECDSA P-256, [`SELF_SIGNED_DAYS`] days) for `domain`.
pub fn self_signed(
    host: &dyn Host,
    cert_path: &Path,
    key_path: &Path,
    domain: &str,
    now: i64,
) -> Result<Material, Error> {
    if let Some(m) = reusable(host, cert_path, key_path, domain, now) {
        return Ok(m);
    }
    generate(domain, now)
}

fn reusable(
    host: &dyn Host,
    cert_path: &Path,
    key_path: &Path,
    domain: &str,
    now: i64,
) -> Option<Material> {
    let cert_pem = host.read(cert_path).ok()??;
    let key_pem = Secret::new(String::from_utf8(host.read(key_path).ok()??).ok()?);
    let (info, cert_pub) = parse_cert(&cert_pem).ok()?;
    let fresh = info.not_before <= now && info.not_after > now + RENEW_BEFORE_DAYS * 86_400;
    let ours = info.self_signed() && info.covers(domain);
    (fresh && ours && parse_key(&key_pem).ok()? == cert_pub).then_some(Material {
        cert_pem,
        key_pem,
        info,
        origin: Origin::SelfSignedReused,
    })
}

/// A new self-signed certificate for `domain` (a DNS name, `*.domain` or an IP address).
pub fn generate(domain: &str, now: i64) -> Result<Material, Error> {
    let fail = |e: rcgen::Error| Error::Other(format!("generating a self-signed certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(fail)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, domain);
    params.distinguished_name = dn;
    let at = |t: i64| {
        ::time::OffsetDateTime::from_unix_timestamp(t)
            .map_err(|e| Error::Other(format!("clock: {e}")))
    };
    params.not_before = at(now - 60)?;
    params.not_after = at(now + SELF_SIGNED_DAYS * 86_400)?;
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let cert_pem = cert.pem().into_bytes();
    let (info, _) = parse_cert(&cert_pem).map_err(Error::Other)?;
    Ok(Material {
        cert_pem,
        key_pem: Secret::new(key.serialize_pem()),
        info,
        origin: Origin::SelfSignedNew,
    })
}

/// Valid now: not expired, not yet valid.
fn check_validity(info: &CertInfo, now: i64) -> Result<(), String> {
    if info.not_after <= now {
        return Err(format!(
            "the certificate expired on {}",
            utc(info.not_after)
        ));
    }
    if info.not_before > now {
        return Err(format!(
            "the certificate is not valid before {}",
            utc(info.not_before)
        ));
    }
    Ok(())
}

/// The first certificate of a PEM file (a chain may follow it).
pub fn info(pem: &[u8]) -> Result<CertInfo, String> {
    parse_cert(pem).map(|(i, _)| i)
}

/// Is `key` the private half of the public key of the first certificate of `cert_pem`?
/// Errors say what cannot be parsed, never quote the key.
pub(crate) fn key_matches(cert_pem: &[u8], key: &Secret) -> Result<bool, String> {
    let (_, cert_pub) = parse_cert(cert_pem)?;
    Ok(parse_key(key)? == cert_pub)
}

/// Was the first certificate of `cert_pem` signed by the first certificate of `ca_pem` (its
/// issuer is the CA's subject and its signature verifies with the CA's public key)?
pub(crate) fn issued_by(cert_pem: &[u8], ca_pem: &[u8]) -> Result<bool, String> {
    let (cert_der, ca_der) = (first_der(cert_pem)?, first_der(ca_pem)?);
    let (_, cert) = X509Certificate::from_der(&cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let (_, ca) = X509Certificate::from_der(&ca_der)
        .map_err(|e| format!("the CA: not an X.509 certificate: {e}"))?;
    Ok(cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok())
}

/// Is the first certificate of `pem` a CA (basicConstraints `CA:TRUE`)?
pub(crate) fn is_ca(pem: &[u8]) -> Result<bool, String> {
    let der = first_der(pem)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.is_ca())
}

/// The DER of the first PEM block of `pem` (a certificate, unless the parse says otherwise).
fn first_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    let block = x509_parser::pem::Pem::iter_from_buffer(pem)
        .next()
        .ok_or("no PEM certificate in it")?
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    Ok(block.contents)
}

fn parse_cert(pem: &[u8]) -> Result<(CertInfo, PublicKey), String> {
    let block = x509_parser::pem::Pem::iter_from_buffer(pem)
        .next()
        .ok_or("no PEM certificate in it")?
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if block.label != "CERTIFICATE" {
        return Err(format!(
            "its first PEM block is `{}`, not `CERTIFICATE`",
            block.label
        ));
    }
    let (_, cert) = X509Certificate::from_der(&block.contents)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let public = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => PublicKey::Rsa {
            modulus: unsigned(k.modulus),
            exponent: unsigned(k.exponent),
        },
        Ok(x509_parser::public_key::PublicKey::EC(p)) => PublicKey::Ec(p.data().to_vec()),
        Ok(_) => return Err("its public key is neither RSA nor EC".into()),
        Err(e) => return Err(format!("its public key: {e}")),
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        names.push(std::net::IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        names.push(std::net::IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let fingerprint = Sha256::digest(&block.contents)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let validity = cert.validity();
    let info = CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        fingerprint,
        names,
    };
    Ok((info, public))
}

/// The public key of a PEM private key: PKCS#8 (`PRIVATE KEY`, RSA or EC), PKCS#1
/// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Errors never quote the key.
fn parse_key(pem: &Secret) -> Result<PublicKey, String> {
    let block = x509_parser::pem::Pem::iter_from_buffer(pem.expose().as_bytes())
        .find(|b| !matches!(b, Ok(b) if b.label == "EC PARAMETERS"))
        .ok_or("no PEM private key in it")?
        .map_err(|_| "not a PEM private key".to_owned())?;
    match block.label.as_str() {
        "PRIVATE KEY" => pkcs8(&block.contents),
        "RSA PRIVATE KEY" => pkcs1(&block.contents),
        "EC PRIVATE KEY" => sec1(&block.contents),
        "ENCRYPTED PRIVATE KEY" => {
            Err("the key is encrypted; nginx needs it without a passphrase".into())
        }
        other => Err(format!("a `{other}` PEM block is not a private key")),
    }
}

const MALFORMED: &str = "malformed private key";

fn der(bytes: &[u8]) -> Result<BerObject<'_>, String> {
    parse_der(bytes)
        .map(|(_, o)| o)
        .map_err(|_| MALFORMED.to_owned())
}

fn seq<'a>(o: &'a BerObject<'a>) -> Result<&'a [BerObject<'a>], String> {
    match &o.content {
        BerObjectContent::Sequence(items) => Ok(items),
        _ => Err(MALFORMED.to_owned()),
    }
}

fn int<'a>(o: &'a BerObject<'a>) -> Result<&'a [u8], String> {
    match &o.content {
        BerObjectContent::Integer(b) => Ok(b),
        _ => Err(MALFORMED.to_owned()),
    }
}

/// PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING privateKey, ... }
fn pkcs8(bytes: &[u8]) -> Result<PublicKey, String> {
    let top = der(bytes)?;
    let items = seq(&top)?;
    let (Some(alg), Some(key)) = (items.get(1), items.get(2)) else {
        return Err(MALFORMED.to_owned());
    };
    let oid = match seq(alg)?.first().map(|o| &o.content) {
        Some(BerObjectContent::OID(oid)) => oid.to_id_string(),
        _ => return Err(MALFORMED.to_owned()),
    };
    let BerObjectContent::OctetString(inner) = &key.content else {
        return Err(MALFORMED.to_owned());
    };
    match oid.as_str() {
        "1.2.840.113549.1.1.1" => pkcs1(inner),
        "1.2.840.10045.2.1" => sec1(inner),
        other => Err(format!(
            "unsupported key algorithm {other} (RSA and EC keys are supported)"
        )),
    }
}

/// RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
fn pkcs1(bytes: &[u8]) -> Result<PublicKey, String> {
    let top = der(bytes)?;
    let items = seq(&top)?;
    let (Some(n), Some(e)) = (items.get(1), items.get(2)) else {
        return Err(MALFORMED.to_owned());
    };
    Ok(PublicKey::Rsa {
        modulus: unsigned(int(n)?),
        exponent: unsigned(int(e)?),
    })
}

/// ECPrivateKey ::= SEQUENCE { version, privateKey, [0] parameters OPTIONAL,
/// [1] publicKey BIT STRING OPTIONAL } (OpenSSL always writes the public key).
fn sec1(bytes: &[u8]) -> Result<PublicKey, String> {
    let top = der(bytes)?;
    for item in seq(&top)?.iter().skip(2) {
        if item.header.tag().0 != 1 || !item.header.is_contextspecific() {
            continue;
        }
        let raw = match &item.content {
            BerObjectContent::Unknown(any) => any.data,
            _ => return Err(MALFORMED.to_owned()),
        };
        return match der(raw)?.content {
            BerObjectContent::BitString(_, bits) => Ok(PublicKey::Ec(bits.data.to_vec())),
            _ => Err(MALFORMED.to_owned()),
        };
    }
    Err("the EC key does not hold its public key; write it with `openssl ec` to check it".into())
}

/// A big-endian unsigned integer without its leading zero bytes.
fn unsigned(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_cover_the_domain_and_match_their_key() {
        let now = now();
        for domain in [
            "localhost",
            "telemetry.example.com",
            "10.0.0.1",
            "*.example.org",
        ] {
            let m = generate(domain, now).unwrap();
            assert!(m.info.covers(domain), "{domain}: {:?}", m.info.names);
            assert!(m.info.self_signed());
            assert_eq!(m.info.subject, format!("CN={domain}"));
            assert!(m.info.not_after > now + (SELF_SIGNED_DAYS - 1) * 86_400);
            let (_, public) = parse_cert(&m.cert_pem).unwrap();
            assert_eq!(parse_key(&m.key_pem).unwrap(), public);
            assert!(!m.info.describe().contains("PRIVATE"));
        }
    }

    #[test]
    fn keys_of_other_certificates_do_not_match() {
        let a = generate("localhost", now()).unwrap();
        let b = generate("localhost", now()).unwrap();
        let (_, pa) = parse_cert(&a.cert_pem).unwrap();
        assert_ne!(parse_key(&b.key_pem).unwrap(), pa);
    }

    #[test]
    fn dates_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_798_761_600), "2027-01-01 00:00:00 UTC");
    }
}

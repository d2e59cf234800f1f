//! `rarangi tls`: a private certificate authority and certificates signed
//! by it, for catalogue links and clients (like `consul tls`).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// The CA's distinguished name. A certificate names its issuer by it, so
/// `tls cert` rebuilds the issuer from the key and this name.
const CA_NAME: &str = "Rarangi CA";

/// Make certificates for catalogues and clients.
///
/// Quick start: `rarangi tls ca /etc/rarangi/tls` once, then on the same
/// machine `rarangi tls cert /etc/rarangi/tls HOST [MORE NAMES...]` for
/// every catalogue host (and client that registers). Copy ca.pem,
/// HOST.pem and HOST-key.pem to each host and start it with
/// `rarangi serve --tls-ca ca.pem --tls-cert HOST.pem --tls-key HOST-key.pem`.
/// Keep ca-key.pem offline: whoever holds it can make peers.
#[derive(clap::Subcommand)]
pub(crate) enum TlsCommand {
    /// Create a certificate authority: DIR/ca.pem (give it to every
    /// catalogue and client) and DIR/ca-key.pem (keep it secret; mode
    /// 0600). Refuses to overwrite existing files.
    Ca {
        /// Directory to write to (created if missing).
        dir: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// Create a certificate signed by the CA in DIR: DIR/NAME.pem and
    /// DIR/NAME-key.pem, named after the first NAME. Every NAME (a host
    /// name or an IP address) goes into the certificate, which serves as
    /// both server and client certificate. A catalogue's certificate must
    /// name the host of its URI (its --advertise host). Refuses to
    /// overwrite existing files.
    Cert {
        /// Directory holding ca.pem and ca-key.pem.
        dir: PathBuf,
        /// Host names and IP addresses the certificate is valid for.
        #[arg(required = true)]
        names: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 825)]
        days: i64,
        /// Replace existing files of this name (renewal).
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `tls` subcommand.
pub(crate) fn run(cmd: &TlsCommand) -> Result<()> {
    match cmd {
        TlsCommand::Ca { dir, days } => make_ca(dir, *days),
        TlsCommand::Cert {
            dir,
            names,
            days,
            force,
        } => make_cert(dir, names, *days, *force),
    }
}

fn validity(params: &mut CertificateParams, days: i64) -> Result<()> {
    if days < 1 {
        bail!("--days must be at least 1");
    }
    // Certificate times are wall-clock dates; an hour of slack covers
    // hosts whose clocks are a little behind.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn make_ca(dir: &Path, days: i64) -> Result<()> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    refuse_existing(&[&cert_path, &key_path])?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = KeyPair::generate().context("cannot generate a key")?;
    let mut params = ca_params();
    validity(&mut params, days)?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the CA certificate")?;
    write_new(&key_path, &key.serialize_pem(), 0o600)?;
    write_new(&cert_path, &cert.pem(), 0o644)?;
    eprintln!(
        "wrote {} and {} (keep the key secret)",
        cert_path.display(),
        key_path.display()
    );
    Ok(())
}

fn make_cert(dir: &Path, names: &[String], days: i64, force: bool) -> Result<()> {
    let first = names.first().context("give at least one NAME")?;
    if first.is_empty() || first.contains(['/', '\0']) || first.starts_with('.') {
        bail!("{first:?} cannot name a file; give a host name or IP address first");
    }
    let (ca_cert, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if !ca_cert.exists() || !ca_key.exists() {
        bail!(
            "no CA in {}: run `rarangi tls ca {}` first",
            dir.display(),
            dir.display()
        );
    }
    let key_pem =
        std::fs::read_to_string(&ca_key).with_context(|| format!("cannot read {}", ca_key.display()))?;
    let ca =
        KeyPair::from_pem(&key_pem).with_context(|| format!("{} is not a private key", ca_key.display()))?;
    let issuer = Issuer::new(ca_params(), ca);

    let (cert_path, key_path) = (
        dir.join(format!("{first}.pem")),
        dir.join(format!("{first}-key.pem")),
    );
    if !force {
        refuse_existing(&[&cert_path, &key_path])?;
    }
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days)?;
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the certificate")?;
    if force {
        let _ = std::fs::remove_file(&key_path);
        let _ = std::fs::remove_file(&cert_path);
    }
    write_new(&key_path, &key.serialize_pem(), 0o600)?;
    write_new(&cert_path, &cert.pem(), 0o644)?;
    eprintln!(
        "wrote {} and {} for {}",
        cert_path.display(),
        key_path.display(),
        names.join(", ")
    );
    Ok(())
}

/// A subject alternative name: an IP address, else a DNS name.
fn san(name: &str) -> Result<SanType> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = name
        .to_owned()
        .try_into()
        .with_context(|| format!("{name:?} is neither a host name nor an IP address"))?;
    Ok(SanType::DnsName(dns))
}

fn refuse_existing(paths: &[&Path]) -> Result<()> {
    for p in paths {
        if p.exists() {
            bail!("{} already exists; not overwriting it", p.display());
        }
    }
    Ok(())
}

/// Writes a new file with `mode` from the start, so a key is never
/// readable by others even for a moment.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

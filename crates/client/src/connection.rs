//! Finding and talking to a catalogue.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rarangi_proto::codec::LineCodec;
use rarangi_proto::wellknown::{self, Side, UserDirs};
use rarangi_proto::{CatalogueUri, ErrorCode, Message, DEFAULT_MAX_LINE};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::tls::TlsOptions;

/// Where a catalogue listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp {a}"),
            Endpoint::Unix(p) => write!(f, "unix {}", p.display()),
        }
    }
}

/// How to reach a catalogue.
#[derive(Debug, Clone)]
pub struct Options {
    /// The environment we belong to; catalogues of others are refused.
    pub environment: String,
    /// Places to try, in order; the first that answers is used.
    pub endpoints: Vec<Endpoint>,
    /// TLS for TCP endpoints (the Unix socket stays plain). The
    /// constructors take it from `RARANGI_TLS_CA/CERT/KEY`.
    pub tls: Option<TlsOptions>,
}

impl Options {
    /// The catalogues of `environment` on this host: side A (Unix socket,
    /// then TCP on localhost), then side B.
    pub fn local(environment: &str) -> Self {
        let dirs = UserDirs::current();
        let mut endpoints = Vec::new();
        for side in Side::BOTH {
            endpoints.push(Endpoint::Unix(dirs.unix_socket(environment, side)));
            if let Some(port) = wellknown::line_port(environment, side) {
                endpoints.push(Endpoint::Tcp(format!("127.0.0.1:{port}")));
            }
        }
        Self {
            environment: environment.to_owned(),
            endpoints,
            tls: TlsOptions::from_env(),
        }
    }

    /// Specific endpoints, tried in order.
    pub fn endpoints(environment: &str, endpoints: Vec<Endpoint>) -> Self {
        Self {
            environment: environment.to_owned(),
            endpoints,
            tls: TlsOptions::from_env(),
        }
    }

    /// With these TLS files for TCP endpoints.
    #[must_use]
    pub fn with_tls(mut self, tls: Option<TlsOptions>) -> Self {
        self.tls = tls;
        self
    }
}

/// What can go wrong talking to a catalogue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No endpoint answered.
    #[error("no catalogue reachable: {0}")]
    Unreachable(String),
    /// The catalogue belongs to another environment (not retried).
    #[error("environment mismatch: {catalogue} is {theirs:?}, we are {ours:?}")]
    EnvMismatch {
        /// The catalogue.
        catalogue: CatalogueUri,
        /// Its environment.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The catalogue refused a request.
    #[error("catalogue refused: {code} {text}")]
    Refused {
        /// The ERROR code.
        code: ErrorCode,
        /// Its text.
        text: String,
    },
    /// The catalogue said something we did not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// A malformed argument.
    #[error("{0}")]
    Invalid(String),
}

type ReadHalf = Pin<Box<dyn AsyncRead + Send>>;
type WriteHalf = Pin<Box<dyn AsyncWrite + Send>>;
type Reader = FramedRead<ReadHalf, LineCodec>;
type Writer = FramedWrite<WriteHalf, LineCodec>;

/// One connection to a catalogue, past its WELCOME.
pub struct Connection {
    reader: Reader,
    writer: Writer,
    /// The catalogue's URI.
    pub catalogue: CatalogueUri,
    /// The catalogue's cluster.
    pub cluster: String,
    /// Where it was reached.
    pub endpoint: Endpoint,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Connection {
    /// Connects to the first endpoint that answers with a WELCOME of our
    /// environment. A mismatch is returned at once.
    pub async fn connect(opts: &Options) -> Result<Self, Error> {
        let mut failures = Vec::new();
        for ep in &opts.endpoints {
            match Self::connect_one(ep, opts).await {
                Ok(c) => return Ok(c),
                Err(e @ Error::EnvMismatch { .. }) => return Err(e),
                Err(e) => failures.push(format!("{ep}: {e}")),
            }
        }
        if failures.is_empty() {
            failures.push("no endpoints configured".into());
        }
        Err(Error::Unreachable(failures.join("; ")))
    }

    async fn connect_one(ep: &Endpoint, opts: &Options) -> Result<Self, Error> {
        let environment = opts.environment.as_str();
        let (r, w): (ReadHalf, WriteHalf) = match ep {
            Endpoint::Tcp(addr) => {
                let s = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| Error::Unreachable("timed out".into()))??;
                let _ = s.set_nodelay(true);
                match &opts.tls {
                    None => {
                        let (r, w) = s.into_split();
                        (Box::pin(r), Box::pin(w))
                    }
                    Some(tls) => {
                        let s = tokio::time::timeout(CONNECT_TIMEOUT, crate::tls::connect(tls, addr, s))
                            .await
                            .map_err(|_| Error::Unreachable("TLS handshake timed out".into()))??;
                        let (r, w) = tokio::io::split(s);
                        (Box::pin(r), Box::pin(w))
                    }
                }
            }
            Endpoint::Unix(path) => {
                let s = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| Error::Unreachable("timed out".into()))??;
                let (r, w) = s.into_split();
                (Box::pin(r), Box::pin(w))
            }
        };
        // Generous: a catalogue may be configured with longer lines.
        let codec = LineCodec::new(DEFAULT_MAX_LINE * 4);
        let mut reader = FramedRead::new(r, codec.clone());
        let first = tokio::time::timeout(CONNECT_TIMEOUT, next_message(&mut reader))
            .await
            .map_err(|_| Error::Protocol("no WELCOME within 3 s".into()))??;
        match first {
            Some(Message::Welcome {
                catalogue,
                cluster,
                environment: theirs,
            }) => {
                if theirs != environment {
                    return Err(Error::EnvMismatch {
                        catalogue,
                        theirs,
                        ours: environment.to_owned(),
                    });
                }
                Ok(Self {
                    reader,
                    writer: FramedWrite::new(w, codec),
                    catalogue,
                    cluster,
                    endpoint: ep.clone(),
                })
            }
            Some(other) => Err(Error::Protocol(format!(
                "expected WELCOME, got {}",
                other.kind().keyword()
            ))),
            None => Err(Error::Protocol("closed before WELCOME".into())),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &Message) -> Result<(), Error> {
        self.writer.send(msg).await.map_err(codec_error)
    }

    /// The next message; None when the catalogue closed the connection.
    pub async fn recv(&mut self) -> Result<Option<Message>, Error> {
        next_message(&mut self.reader).await
    }

    /// Sends a request and waits for the line that ends its answer (the
    /// HEARTBEAT that follows it), failing on an ERROR in between. Other
    /// lines received meanwhile are returned.
    pub async fn request(&mut self, msg: &Message) -> Result<Vec<Message>, Error> {
        self.send(msg).await?;
        self.send(&Message::Heartbeat).await?;
        let mut got = Vec::new();
        loop {
            match self.recv().await? {
                Some(Message::Heartbeat) => return Ok(got),
                Some(Message::Error { code, text }) => return Err(Error::Refused { code, text }),
                Some(m) => got.push(m),
                None => return Err(Error::Protocol("connection closed".into())),
            }
        }
    }
}

async fn next_message(reader: &mut Reader) -> Result<Option<Message>, Error> {
    match reader.next().await {
        None => Ok(None),
        Some(Err(e)) => Err(codec_error(e)),
        Some(Ok(parsed)) => parsed
            .map(Some)
            .map_err(|e| Error::Protocol(format!("unparsable line from catalogue: {e}"))),
    }
}

fn codec_error(e: rarangi_proto::codec::CodecError) -> Error {
    match e {
        rarangi_proto::codec::CodecError::Io(io) => Error::Io(io),
        other => Error::Protocol(other.to_string()),
    }
}

//! A small service that registers itself with the local catalogue and
//! echoes lines back. Stop it (Ctrl-C, or kill it) and it disappears from
//! every catalogue.
//!
//! ```sh
//! cargo run -p rarangi -- serve &                        # a catalogue
//! cargo run -p rarangi-client --example echo_service     # this service
//! cargo run -p rarangi-client --example echo_client      # finds it, talks to it
//! ```

use rarangi_client::{register, Attrs, Options};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = std::env::var("RARANGI_ENV").unwrap_or_else(|_| "development".into());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let uri = format!("tcp://{}/echo", listener.local_addr()?);
    // Keep `_registration` alive: dropping it deregisters.
    let _registration = register(&Options::local(&env), &uri, Attrs::default()).await?;
    println!("serving {uri}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

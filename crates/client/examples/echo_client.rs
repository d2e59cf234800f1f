//! Finds the `echo` service through the catalogue (nearest instance first)
//! and talks to it. See `echo_service.rs`.

use rarangi_client::{Options, Resolver};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = std::env::var("RARANGI_ENV").unwrap_or_else(|_| "development".into());
    let resolver = Resolver::start(&Options::local(&env)).await?;
    let Some(echo) = resolver.resolve("echo").into_iter().next() else {
        eprintln!("no echo service registered; start the echo_service example first");
        std::process::exit(1);
    };
    println!("using {} (registered at {})", echo.service, echo.catalogue);
    let stream = TcpStream::connect(echo.service.instance()).await?;
    let (r, mut w) = stream.into_split();
    w.write_all(b"hello from the echo client\n").await?;
    let reply = BufReader::new(r).lines().next_line().await?.unwrap_or_default();
    println!("echo replied: {reply}");
    Ok(())
}

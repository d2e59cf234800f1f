//! Prints the protocol transcript of docs/PROTOCOL.md:
//! `cargo run -p rarangi-sim --example transcript` (the whole conversation)
//! or `... -- --docs` (elided as in the doc, ready to paste).

fn main() {
    if std::env::args().any(|a| a == "--docs") {
        println!("{}", rarangi_sim::transcript::for_docs());
    } else {
        print!("{}", rarangi_sim::transcript::transcript());
    }
}

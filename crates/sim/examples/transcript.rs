//! Prints the protocol transcript of docs/PROTOCOL.md:
//! `cargo run -p rarangi-sim --example transcript`.

fn main() {
    print!("{}", rarangi_sim::transcript::transcript());
}

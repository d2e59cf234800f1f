//! The example conversation in docs/PROTOCOL.md is what the code says.

#[test]
fn protocol_doc_shows_the_real_transcript() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md")).unwrap();
    let start = doc.find("```text\n# B accepts").expect("the transcript block") + "```text\n".len();
    let end = start + doc[start..].find("```").expect("end of block");
    let expected = rarangi_sim::transcript::for_docs();
    assert_eq!(
        doc[start..end].trim(),
        expected,
        "docs/PROTOCOL.md is out of date: paste the output of `cargo run -p rarangi-sim --example transcript -- --docs`"
    );
}

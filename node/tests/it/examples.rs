//! Every shipped example is a valid document (the README and docs point users at them).

#[test]
fn every_example_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "json") {
            let text = std::fs::read_to_string(&path).expect("read");
            if let Err(error) = gantry_proto::parse_document(&text) {
                panic!("{}: {error}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "found {checked} examples");
}

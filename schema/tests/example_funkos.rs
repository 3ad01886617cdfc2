//! The example funkos in `funkos/` are what users copy; each must load with today's schema.

#[test]
fn every_example_funko_loads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../funkos");
    let (funkos, problems) = faaso_schema::load_funkos_dir(&root).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(!funkos.is_empty(), "no funkos under {}", root.display());
}

//! The committed JSON Schema must match the types, or editors validate against a stale file.

#[test]
fn committed_schema_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("funko.schema.json");
    let current = faaso_schema::json_schema();
    if std::env::var_os("FAASO_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "schema/funko.schema.json is stale; regenerate it with `faaso schema > schema/funko.schema.json` \
         (or FAASO_UPDATE_SCHEMA=1 cargo test -p faaso-schema)"
    );
}

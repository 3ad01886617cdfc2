//! `admin/openapi.json` held to the real router. Every documented operation is sent (with its
//! examples, and again naming a funko that does not exist) and must be routed and answer one of
//! its documented statuses, with a documented content type and, for JSON, a body its schema
//! accepts; every method a path does not document must answer 405, with an `Allow` that lists
//! exactly the documented methods; security is checked with no token and a wrong one; the event
//! schema is checked against every serialized `AdminEvent`; and `FunkoStatus`'s schema against
//! the struct's fields. Docker is never needed: a logs request that cannot reach it answers 502,
//! which is documented.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use faaso_admin::{AdminEvent, AdminState, SecretStore, StatusBoard, Token, UploadLimits};
use faaso_reconciler::Namespace;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef0123";
const SPEC: &str = include_str!("../openapi.json");
/// Every method an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The other fields a path item may have.
const PATH_ITEM_FIELDS: [&str; 3] = ["parameters", "summary", "description"];
/// A valid funko name and secret key that the fixture does not hold.
const MISSING: &str = "nobody";
/// Operations whose example request does not succeed against the fixture, and why.
const NOT_2XX_HERE: [(&str, &str); 2] = [
    (
        "getFunko",
        "no reconcile pass runs here, so the funko is not on the board",
    ),
    (
        "funkoLogs",
        "without Docker it is 502; with it, 404 unless such instances run",
    ),
];
/// `FunkoStatus` fields the schema documents ahead of the committed struct (`image_created` is
/// being added in the reconciler): their absence from the struct is tolerated, nothing else.
/// Empty it once they have landed.
const PENDING_FIELDS: [&str; 1] = ["image_created"];

fn spec() -> Value {
    serde_json::from_str(SPEC).expect("admin/openapi.json is not valid JSON")
}

/// Follows local `$ref`s.
fn resolve<'a>(spec: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are used: {reference}"));
        value = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"));
    }
    value
}

/// One documented operation.
struct Operation<'a> {
    path: &'a str,
    method: &'static str,
    op: &'a Value,
    item: &'a Value,
}

impl Operation<'_> {
    fn id(&self) -> &str {
        self.op["operationId"].as_str().unwrap_or("?")
    }

    fn label(&self) -> String {
        format!(
            "{} {} ({})",
            self.method.to_uppercase(),
            self.path,
            self.id()
        )
    }

    /// Path-level and operation-level parameters, resolved.
    fn parameters<'s>(&'s self, spec: &'s Value) -> Vec<&'s Value> {
        let listed = |v: &'s Value| -> Vec<&'s Value> {
            v.get("parameters")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|p| resolve(spec, p)).collect())
                .unwrap_or_default()
        };
        let mut all = listed(self.item);
        all.extend(listed(self.op));
        all
    }

    /// The URL with every path parameter set by `value` (given the parameter).
    fn url(&self, spec: &Value, value: impl Fn(&Value) -> String) -> String {
        let parameters = self.parameters(spec);
        let mut url = String::new();
        let mut rest = self.path;
        let mut used = BTreeSet::new();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').expect("unclosed `{` in a path") + open;
            let name = &rest[open + 1..close];
            let parameter = parameters
                .iter()
                .find(|p| p["in"] == "path" && p["name"] == name)
                .unwrap_or_else(|| {
                    panic!("{}: path parameter `{name}` is undocumented", self.label())
                });
            assert_eq!(parameter["required"], true, "{}: `{name}`", self.label());
            url.push_str(&rest[..open]);
            url.push_str(&value(parameter));
            used.insert(name.to_owned());
            rest = &rest[close + 1..];
        }
        url.push_str(rest);
        for p in &parameters {
            match p["in"].as_str() {
                Some("path") => assert!(
                    used.contains(p["name"].as_str().unwrap_or_default()),
                    "{}: parameter {} is not in the path",
                    self.label(),
                    p["name"]
                ),
                Some("query") => assert_ne!(
                    p["required"],
                    true,
                    "{}: this test sends no query parameters; teach it required ones",
                    self.label()
                ),
                other => panic!("{}: parameters `in: {other:?}`", self.label()),
            }
        }
        url
    }

    /// The effective security requirements.
    fn secured(&self, spec: &Value) -> bool {
        let security = self.op.get("security").unwrap_or(&spec["security"]);
        let requirements = security.as_array().expect("security is a list");
        for requirement in requirements {
            for scheme in requirement
                .as_object()
                .expect("a security requirement")
                .keys()
            {
                assert!(
                    spec["components"]["securitySchemes"].get(scheme).is_some(),
                    "{}: unknown security scheme `{scheme}`",
                    self.label()
                );
            }
        }
        !requirements.is_empty()
    }
}

fn operations(spec: &Value) -> Vec<Operation<'_>> {
    let mut all = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for field in item.as_object().expect("a path item").keys() {
            assert!(
                METHODS.contains(&field.as_str()) || PATH_ITEM_FIELDS.contains(&field.as_str()),
                "{path}: unexpected path item field `{field}`"
            );
        }
        for method in METHODS {
            if let Some(op) = item.get(method) {
                all.push(Operation {
                    path,
                    method,
                    op,
                    item,
                });
            }
        }
    }
    assert!(!all.is_empty(), "the spec documents no operation");
    all
}

fn http_method(method: &str) -> Method {
    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap()
}

/// The parameter's documented example.
fn example(parameter: &Value) -> String {
    parameter["example"]
        .as_str()
        .unwrap_or_else(|| panic!("parameter {} has no string example", parameter["name"]))
        .to_owned()
}

/// The fixture: funko `hello` in the funkos folder, secret `hello/api-key`, one (empty) pass on
/// the board, and a Docker client that is never connected unless a logs request asks it.
struct Fixture {
    app: axum::Router,
    _funkos: tempfile::TempDir,
    _state: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let funkos = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let hello = funkos.path().join("hello");
    std::fs::create_dir(&hello).unwrap();
    std::fs::write(hello.join("funko.yml"), "name: hello\nruntime: python\n").unwrap();
    std::fs::write(
        hello.join("handler.py"),
        "def handle(request):\n    return {}\n",
    )
    .unwrap();
    let secrets = state.path().join("secrets");
    std::fs::create_dir_all(secrets.join("hello")).unwrap();
    std::fs::write(secrets.join("hello/api-key"), "s3cr3t").unwrap();
    let board = StatusBoard::default();
    board.pass_finished(Vec::new(), 0);
    let (trigger, _) = mpsc::unbounded_channel();
    let admin = Arc::new(AdminState {
        funkos_dir: funkos.path().to_owned(),
        secrets: SecretStore::new(secrets),
        token: Token::new(TOKEN).unwrap(),
        board,
        trigger,
        docker: bollard::Docker::connect_with_local_defaults().unwrap(),
        namespace: Namespace::default(),
        limits: UploadLimits::default(),
    });
    Fixture {
        app: faaso_admin::router(admin),
        _funkos: funkos,
        _state: state,
    }
}

/// A gzipped tar of a valid funko named `name`.
fn funko_archive(name: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, text) in [
        ("funko.yml", format!("name: {name}\nruntime: python\n")),
        (
            "handler.py",
            "def handle(request):\n    return {}\n".to_owned(),
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// Gives a path parameter (the parameter object) its value.
type ParamValue<'a> = &'a dyn Fn(&Value) -> String;

/// The documented request: path parameters from `value`, the body from the request body's
/// example (an upload is a real archive of a funko named like the `name` parameter).
fn request(
    spec: &Value,
    op: &Operation<'_>,
    value: ParamValue<'_>,
    token: Option<&str>,
) -> Request<Body> {
    let url = op.url(spec, value);
    let mut builder = Request::builder().method(http_method(op.method)).uri(url);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let Some(body) = op.op.get("requestBody").map(|b| resolve(spec, b)) else {
        return builder.body(Body::empty()).unwrap();
    };
    let content = body["content"].as_object().expect("requestBody content");
    assert_eq!(content.len(), 1, "{}: one request media type", op.label());
    let (media_type, media) = content.iter().next().unwrap();
    let bytes = match media_type.as_str() {
        "application/json" => serde_json::to_vec(&media["example"]).unwrap(),
        "application/gzip" => {
            let name = op
                .parameters(spec)
                .into_iter()
                .find(|p| p["name"] == "name")
                .map(value)
                .expect("an upload names its funko");
            funko_archive(&name)
        }
        _ => media["example"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the body has no example", op.label()))
            .as_bytes()
            .to_vec(),
    };
    builder
        .header(header::CONTENT_TYPE, media_type.as_str())
        .body(Body::from(bytes))
        .unwrap()
}

async fn send(app: &axum::Router, request: Request<Body>) -> Response<Body> {
    let what = format!("{} {}", request.method(), request.uri());
    tokio::time::timeout(Duration::from_secs(60), app.clone().oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 60 s"))
        .unwrap()
}

/// Checks the answer against the operation's documented responses; returns the JSON body, if
/// any. Streams (logs, events) are never read.
async fn check_answer(
    spec: &Value,
    op: &Operation<'_>,
    response: Response<Body>,
    label: &str,
) -> Option<Value> {
    let status = response.status();
    assert_ne!(
        status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{label}: the router has no such method here"
    );
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| {
        v.to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_owned()
    });
    assert!(
        !(status == StatusCode::NOT_FOUND && content_type.is_none()),
        "{label}: answered the router's 404 for unknown routes"
    );
    let responses = op.op["responses"].as_object().expect("responses");
    let documented = responses.get(status.as_str()).unwrap_or_else(|| {
        panic!(
            "{label}: answered {status}, which is not documented (documented: {:?})",
            responses.keys().collect::<Vec<_>>()
        )
    });
    let documented = resolve(spec, documented);
    let Some(content) = documented.get("content").and_then(Value::as_object) else {
        assert_eq!(
            content_type, None,
            "{label}: {status} is documented bodiless"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty(), "{label}: {status} is documented bodiless");
        return None;
    };
    let content_type =
        content_type.unwrap_or_else(|| panic!("{label}: {status} came without a content type"));
    let media = content.get(&content_type).unwrap_or_else(|| {
        panic!(
            "{label}: {status} came as {content_type}; documented: {:?}",
            content.keys().collect::<Vec<_>>()
        )
    });
    if content_type != "application/json" {
        return None;
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{label}: {status} is not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    if let Err(problem) = check(spec, &media["schema"], &body, "body") {
        panic!("{label}: {status} {body} does not match its schema: {problem}");
    }
    Some(body)
}

/// Checks `value` against the subset of JSON Schema the spec uses. A keyword it does not know
/// is an error, so the spec cannot outgrow the checker unnoticed.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    let rules = schema
        .as_object()
        .ok_or_else(|| format!("{at}: the schema is not an object"))?;
    if let Some(types) = rules.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad `type`")),
        };
        let is = |t: &str| match t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        };
        if !types.iter().any(|t| is(t)) {
            return Err(format!("{at}: {value} is not {types:?}"));
        }
    }
    for (keyword, rule) in rules {
        match keyword.as_str() {
            "type" => {}
            // Annotations, and `pattern` (no regex engine here; the server checks names).
            "description" | "format" | "contentMediaType" | "pattern" | "default" => {}
            "const" if value != rule => {
                return Err(format!("{at}: {value} is not {rule}"));
            }
            "const" => {}
            "enum" if !rule.as_array().is_some_and(|a| a.contains(value)) => {
                return Err(format!("{at}: {value} is not one of {rule}"));
            }
            "enum" => {}
            "minimum" | "maximum" => {
                let (Some(n), Some(limit)) = (value.as_f64(), rule.as_f64()) else {
                    continue;
                };
                if (keyword == "minimum" && n < limit) || (keyword == "maximum" && n > limit) {
                    return Err(format!("{at}: {n} is beyond {keyword} {limit}"));
                }
            }
            "minLength" | "maxLength" => {
                let (Some(s), Some(limit)) = (value.as_str(), rule.as_u64()) else {
                    continue;
                };
                let len = s.chars().count() as u64;
                if (keyword == "minLength" && len < limit)
                    || (keyword == "maxLength" && len > limit)
                {
                    return Err(format!("{at}: {value} is beyond {keyword} {limit}"));
                }
            }
            "properties" => {
                let Some(object) = value.as_object() else {
                    continue;
                };
                for (name, property) in rule.as_object().expect("properties") {
                    if let Some(v) = object.get(name) {
                        check(spec, property, v, &format!("{at}.{name}"))?;
                    }
                }
            }
            "required" => {
                let Some(object) = value.as_object() else {
                    continue;
                };
                for name in rule.as_array().expect("required").iter() {
                    let name = name.as_str().expect("a required name");
                    if !object.contains_key(name) {
                        return Err(format!("{at}: `{name}` is missing"));
                    }
                }
            }
            "additionalProperties" => {
                let Some(object) = value.as_object() else {
                    continue;
                };
                let known = rules.get("properties").and_then(Value::as_object);
                for (name, v) in object {
                    if known.is_some_and(|k| k.contains_key(name)) {
                        continue;
                    }
                    match rule {
                        Value::Bool(false) => {
                            return Err(format!("{at}: `{name}` is not documented"));
                        }
                        Value::Bool(true) => {}
                        _ => check(spec, rule, v, &format!("{at}.{name}"))?,
                    }
                }
            }
            "items" => {
                let Some(items) = value.as_array() else {
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    check(spec, rule, item, &format!("{at}[{i}]"))?;
                }
            }
            "oneOf" => {
                let matching = rule
                    .as_array()
                    .expect("oneOf")
                    .iter()
                    .filter(|s| check(spec, s, value, at).is_ok())
                    .count();
                if matching != 1 {
                    return Err(format!("{at}: {value} matches {matching} of oneOf"));
                }
            }
            "discriminator" => {
                let property = rule["propertyName"].as_str().expect("propertyName");
                let tag = value[property]
                    .as_str()
                    .ok_or_else(|| format!("{at}: no `{property}`"))?;
                let target = rule["mapping"]
                    .get(tag)
                    .ok_or_else(|| format!("{at}: `{property}` {tag} is not mapped"))?;
                check(spec, &json!({ "$ref": target }), value, at)?;
            }
            other => return Err(format!("{at}: the checker does not know `{other}`")),
        }
    }
    Ok(())
}

#[test]
fn the_document_is_whole() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(
        spec["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "info.version"
    );
    // Every $ref resolves.
    let mut stack = vec![&spec];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                if object.contains_key("$ref") {
                    resolve(&spec, value);
                }
                stack.extend(object.values());
            }
            Value::Array(array) => stack.extend(array),
            _ => {}
        }
    }
    let mut ids = BTreeSet::new();
    for op in operations(&spec) {
        assert!(
            ids.insert(op.id().to_owned()),
            "{}: duplicate id",
            op.label()
        );
        assert!(
            op.op["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{}: no responses",
            op.label()
        );
        // Checks the parameters against the path, and that every security scheme exists.
        op.url(&spec, example);
        op.secured(&spec);
    }
    for (id, _) in NOT_2XX_HERE {
        assert!(ids.contains(id), "NOT_2XX_HERE names unknown {id}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_as_documented() {
    let spec = spec();
    for op in operations(&spec) {
        // The examples, then a funko (and key) that does not exist.
        let missing = |_: &Value| MISSING.to_owned();
        let variants: [(&str, ParamValue<'_>); 2] = [("examples", &example), ("missing", &missing)];
        for (variant, value) in variants {
            let fixture = fixture();
            let request = request(&spec, &op, value, Some(TOKEN));
            let label = format!("{} [{variant}: {}]", op.label(), request.uri());
            let response = send(&fixture.app, request).await;
            let status = response.status();
            let body = check_answer(&spec, &op, response, &label).await;
            if variant == "examples" && !NOT_2XX_HERE.iter().any(|(id, _)| *id == op.id()) {
                assert!(status.is_success(), "{label}: answered {status}: {body:?}");
            }
            if op.path == "/admin/openapi.json" {
                assert_eq!(body.as_ref(), Some(&spec), "{label}: serves the file");
            }
        }
    }
}

#[tokio::test]
async fn undocumented_methods_answer_405_allowing_exactly_the_documented_ones() {
    let spec = spec();
    let fixture = fixture();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let documented: BTreeSet<&str> = METHODS
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .collect();
        // The router answers HEAD wherever it answers GET.
        let mut allowed: BTreeSet<String> = documented.iter().map(|m| m.to_uppercase()).collect();
        if documented.contains("get") {
            allowed.insert("HEAD".into());
        }
        let any = *documented.iter().next().expect("a path without operations");
        let op = Operation {
            path,
            method: any,
            op: &item[any],
            item,
        };
        let url = op.url(&spec, example);
        let mut checked = 0;
        for method in METHODS.into_iter().filter(|m| !documented.contains(m)) {
            let request = Request::builder()
                .method(http_method(method))
                .uri(&url)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap();
            let response = send(&fixture.app, request).await;
            let label = format!("{} {url}", method.to_uppercase());
            if allowed.contains(&method.to_uppercase()) {
                assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{label}");
                continue;
            }
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{label}: an undocumented method is routed"
            );
            let allow: BTreeSet<String> = response
                .headers()
                .get(header::ALLOW)
                .unwrap_or_else(|| panic!("{label}: 405 without Allow"))
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect();
            assert_eq!(allow, allowed, "{label}: the router's methods for {path}");
            checked += 1;
        }
        assert!(checked > 0, "{path}: every method is documented?");
    }
}

#[tokio::test]
async fn security_is_as_documented() {
    let spec = spec();
    let fixture = fixture();
    for op in operations(&spec) {
        for token in [None, Some("0123456789abcdef0124")] {
            let request = request(&spec, &op, &example, token);
            let label = format!("{} with token {token:?}", op.label());
            let response = send(&fixture.app, request).await;
            if !op.secured(&spec) {
                assert_ne!(response.status(), StatusCode::UNAUTHORIZED, "{label}");
                check_answer(&spec, &op, response, &label).await;
                continue;
            }
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{label}");
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE),
                Some(&HeaderValue::from_static("Bearer realm=\"faaso admin\"")),
                "{label}"
            );
            let documented = resolve(&spec, &op.op["responses"]["401"]);
            let header = &documented["headers"]["WWW-Authenticate"]["schema"]["const"];
            assert_eq!(
                header, "Bearer realm=\"faaso admin\"",
                "{label}: documented"
            );
            check_answer(&spec, &op, response, &label).await;
        }
    }
}

/// One of each event. The match below stops compiling when a variant is added, so this list
/// (and the schema) cannot miss it.
fn every_event() -> Vec<AdminEvent> {
    let all = vec![
        AdminEvent::Pass {
            pass: 3,
            steps: 2,
            pending: vec!["hello".into()],
        },
        AdminEvent::InstanceReady {
            funko: "hello".into(),
            instance: "faaso-hello-1".into(),
        },
        AdminEvent::InstanceLeaving {
            funko: "hello".into(),
            instance: "0f1e2d3c4b5a".into(),
        },
        AdminEvent::Deployed {
            funko: "hello".into(),
        },
        AdminEvent::Deleted {
            funko: "hello".into(),
        },
        AdminEvent::Scaled {
            funko: "hello".into(),
            scale: 3,
        },
        AdminEvent::Secret {
            funko: "hello".into(),
            key: "api-key".into(),
            removed: false,
        },
    ];
    for event in &all {
        match event {
            AdminEvent::Pass { .. }
            | AdminEvent::InstanceReady { .. }
            | AdminEvent::InstanceLeaving { .. }
            | AdminEvent::Deployed { .. }
            | AdminEvent::Deleted { .. }
            | AdminEvent::Scaled { .. }
            | AdminEvent::Secret { .. } => {}
        }
    }
    all
}

#[test]
fn every_event_matches_the_event_schema() {
    let spec = spec();
    let schema = &spec["paths"]["/admin/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["x-event-data"];
    assert!(schema.is_object(), "the event stream's x-event-data");
    let mut types = BTreeSet::new();
    for event in every_event() {
        let value = serde_json::to_value(&event).unwrap();
        if let Err(problem) = check(&spec, schema, &value, "event") {
            panic!("{value} does not match the event schema: {problem}");
        }
        types.insert(value["type"].as_str().unwrap().to_owned());
    }
    let mapped: BTreeSet<String> = resolve(&spec, schema)["discriminator"]["mapping"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(mapped, types, "documented event types");
}

/// `FunkoStatus`'s fields and their Rust types (it serializes each one as is: no serde
/// attributes), from `reconciler/src/reconcile.rs`.
fn funko_status_fields() -> BTreeMap<String, String> {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../reconciler/src/reconcile.rs"),
    )
    .unwrap();
    let start = source
        .find("pub struct FunkoStatus {")
        .expect("FunkoStatus in reconciler/src/reconcile.rs");
    let body = &source[start..];
    let body = &body[..body.find("\n}").unwrap()];
    let attributes = source[..start].rsplit("\n\n").next().unwrap_or_default();
    assert!(
        !attributes.contains("#[serde") && !body.contains("#[serde"),
        "FunkoStatus has serde attributes: teach this test"
    );
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, ty)| {
            (
                name.trim().to_owned(),
                ty.trim().trim_end_matches(',').to_owned(),
            )
        })
        .collect()
}

/// The JSON types serde gives a Rust type.
fn json_types(rust: &str) -> BTreeSet<String> {
    if let Some(inner) = rust
        .strip_prefix("Option<")
        .and_then(|t| t.strip_suffix('>'))
    {
        let mut types = json_types(inner);
        types.insert("null".into());
        return types;
    }
    let json = match rust {
        "String" => "string",
        "bool" => "boolean",
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "integer",
        _ if rust.starts_with("Vec<") => "array",
        _ => panic!("FunkoStatus has a field of type {rust}: teach this test"),
    };
    BTreeSet::from([json.to_owned()])
}

#[test]
fn funko_status_documents_the_struct_fields() {
    let spec = spec();
    let schema = &spec["components"]["schemas"]["FunkoStatus"];
    let properties = schema["properties"].as_object().unwrap();
    let documented: BTreeSet<String> = properties.keys().cloned().collect();
    let required: BTreeSet<String> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(required, documented, "every field is always serialized");
    let fields = funko_status_fields();
    assert!(
        fields.contains_key("name") && fields.contains_key("ready"),
        "{fields:?}"
    );
    let mut expected: BTreeSet<String> = fields.keys().cloned().collect();
    expected.extend(PENDING_FIELDS.map(str::to_owned));
    assert_eq!(documented, expected, "FunkoStatus fields vs its schema");
    for (name, rust) in &fields {
        let types: BTreeSet<String> = match &properties[name]["type"] {
            Value::String(t) => BTreeSet::from([t.clone()]),
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap().to_owned()).collect(),
            other => panic!("FunkoStatus.{name}: type {other}"),
        };
        assert_eq!(types, json_types(rust), "FunkoStatus.{name}: {rust}");
    }
}

#[test]
fn the_checker_refuses_wrong_shapes() {
    let spec = spec();
    let at = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let ok = |name: &str, value: Value| check(&spec, &at(name), &value, name);
    assert!(ok("Error", json!({"error": "no"})).is_ok());
    assert!(ok("Error", json!({"error": 1})).is_err());
    assert!(ok("Error", json!({})).is_err());
    assert!(ok("Error", json!({"error": "no", "extra": 1})).is_err());
    let board = json!({"pass": 1, "updated_at": 2, "funkos": []});
    assert!(ok("Board", board.clone()).is_ok());
    assert!(ok("Board", json!({"pass": 1, "funkos": []})).is_err());
    assert!(ok("Board", json!({"pass": -1, "updated_at": 2, "funkos": []})).is_err());
    let status = json!({
        "name": "hello", "desired": null, "ready": 0, "outdated": 0,
        "image": "faaso-hello:abc", "image_created": 1735787045, "error": null
    });
    assert!(ok("FunkoStatus", status.clone()).is_ok());
    let mut wrong = status.clone();
    wrong["ready"] = json!("0");
    assert!(ok("FunkoStatus", wrong).is_err());
    assert!(
        ok(
            "Board",
            json!({"pass": 1, "updated_at": 2, "funkos": [{"name": "x"}]})
        )
        .is_err()
    );
    assert!(
        ok(
            "ScaleAnswer",
            json!({"funko": "hello", "from": 1, "to": 101})
        )
        .is_err()
    );
    assert!(ok("SecretKeys", json!({"hello": ["api-key"]})).is_ok());
    assert!(ok("SecretKeys", json!({"hello": "api-key"})).is_err());
    let event = |v: Value| check(&spec, &at("AdminEvent"), &v, "event");
    assert!(event(json!({"type": "deleted", "funko": "x"})).is_ok());
    assert!(event(json!({"type": "deleted"})).is_err());
    assert!(event(json!({"type": "exploded", "funko": "x"})).is_err());
    assert!(check(&spec, &json!({"allOf": []}), &json!(1), "x").is_err());
}

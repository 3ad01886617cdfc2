//! `admin/openapi.json` held to the real router. Every documented operation is sent (with its
//! examples, naming a funko that does not exist, with no token and with a wrong one) and must be
//! routed and answer one of its documented statuses, with a documented content type and, for
//! JSON, a body its schema accepts; every method a path does not document must answer 405, with
//! an `Allow` that lists exactly the documented methods; the event schema is checked against
//! every serialized `AdminEvent`, and `FunkoStatus`'s against serialized `FunkoStatus`es, field
//! for field. Schemas are JSON Schema 2020-12, checked by the `jsonschema` crate. Docker is
//! never needed: a logs request that cannot reach it answers 502, which is documented.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use faaso_admin::{AdminEvent, AdminState, SecretStore, StatusBoard, Token, UploadLimits};
use faaso_reconciler::{FunkoStatus, Namespace};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt;

static SPEC: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is not JSON")
});
const TOKEN: &str = "0123456789abcdef0123";
const WRONG_TOKEN: &str = "0123456789abcdef0124";
const CHALLENGE: &str = "Bearer realm=\"faaso admin\"";
/// Every method an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// A valid funko name and secret key that the fixture does not hold.
const MISSING: &str = "nobody";
const HANDLER: &str = "def handle(request):\n    return {}\n";

/// Follows local `$ref`s (of parameters, request bodies and responses too, not only schemas).
fn resolve(mut value: &Value) -> &Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference.strip_prefix('#').expect("only local $refs");
        value = SPEC.pointer(pointer).expect("no dangling $ref");
    }
    value
}

/// Checks `value` against `schema`, whose `$ref`s point into the spec's `components`.
fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    let root = json!({ "components": SPEC["components"], "allOf": [schema] });
    let validator = jsonschema::draft202012::new(&root).expect("a valid schema");
    validator.validate(value).map_err(|e| e.to_string())
}

fn component(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn keys(object: &Value) -> BTreeSet<String> {
    let object = object.as_object().expect("an object");
    object.keys().cloned().collect()
}

/// One documented operation.
struct Operation {
    path: &'static str,
    method: Method,
    op: &'static Value,
    /// Path-level and operation-level parameters, resolved.
    parameters: Vec<&'static Value>,
    id: &'static str,
    label: String,
}

impl Operation {
    fn new(path: &'static str, method: &'static str) -> Self {
        let item = &SPEC["paths"][path];
        let op = &item[method];
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let id = op["operationId"].as_str().expect("an operationId");
        let lists = [&item["parameters"], &op["parameters"]];
        let parameters = lists.iter().flat_map(|l| l.as_array()).flatten();
        let parameters = parameters.map(resolve).collect();
        let label = format!("{method} {path} ({id})");
        Operation {
            path,
            method,
            op,
            parameters,
            id,
            label,
        }
    }

    /// The URL with every path parameter set by `value` (given the parameter).
    fn url(&self, value: impl Fn(&Value) -> String) -> String {
        let (mut url, label) = (self.path.to_owned(), &self.label);
        for p in &self.parameters {
            let slot = format!("{{{}}}", p["name"].as_str().expect("a parameter name"));
            match p["in"].as_str() {
                Some("path") => {
                    let ok = url.contains(&slot) && p["required"] == true;
                    assert!(ok, "{label}: path parameter {slot}");
                    url = url.replace(&slot, &value(p));
                }
                Some("query") => assert_ne!(p["required"], true, "{label}: a required query"),
                other => panic!("{label}: parameters `in: {other:?}`"),
            }
        }
        assert!(!url.contains('{'), "{label}: undocumented path parameter");
        url
    }

    /// Whether the operation needs a token; every scheme it names must exist.
    fn secured(&self) -> bool {
        let security = self.op.get("security").unwrap_or(&SPEC["security"]);
        let requirements = security.as_array().expect("security is a list");
        for scheme in requirements.iter().flat_map(keys) {
            let known = SPEC["components"]["securitySchemes"].get(&scheme).is_some();
            assert!(known, "{}: unknown security scheme `{scheme}`", self.label);
        }
        !requirements.is_empty()
    }
}

/// The methods a path documents.
fn methods(path: &str) -> Vec<&'static str> {
    let item = &SPEC["paths"][path];
    for field in keys(item) {
        let field = field.as_str();
        let known = ["parameters", "summary", "description"].contains(&field);
        assert!(known || METHODS.contains(&field), "{path}: `{field}`");
    }
    let documented = |m: &&str| item.get(m).is_some();
    METHODS.into_iter().filter(documented).collect()
}

fn operations() -> Vec<Operation> {
    let paths = SPEC["paths"].as_object().expect("paths").keys();
    let all = paths.flat_map(|path| methods(path).into_iter().map(|m| Operation::new(path, m)));
    let all: Vec<Operation> = all.collect();
    assert!(!all.is_empty(), "the spec documents no operation");
    all
}

/// The parameter's documented example.
fn example(parameter: &Value) -> String {
    let example = parameter["example"].as_str().map(str::to_owned);
    example.unwrap_or_else(|| panic!("{parameter}: no string example"))
}

/// A status with every field set (the literal stops compiling when a field is added), and one
/// with every `Option` field `None`.
fn funko_statuses() -> Vec<FunkoStatus> {
    let full = FunkoStatus {
        name: "hello".into(),
        desired: Some(2),
        ready: 1,
        outdated: 1,
        paused: 0,
        stopped: 0,
        autoscaled: None,
        last_decision: None,
        converging: Some(faaso_reconciler::Converging {
            since: 1_735_787_045,
            seconds: 75,
            step: "build faaso-hello:0123abcd".into(),
        }),
        image: Some("faaso-hello:0123abcd".into()),
        image_created: Some(1_735_787_045),
        error: Some("the build failed".into()),
        config_hash: Some("0123abcd".into()),
    };
    let bare = FunkoStatus {
        name: "gone".into(),
        desired: None,
        image: None,
        image_created: None,
        error: None,
        config_hash: None,
        ..full.clone()
    };
    vec![full, bare]
}

/// The app: funko `hello` in the funkos folder, secret `hello/api-key`, a pass on the board
/// with `funko_statuses()`, and the Docker backend in the test's namespace.
async fn fixture() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (funkos, secrets) = (dir.path().join("funkos"), dir.path().join("secrets"));
    let write = |path: std::path::PathBuf, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let hello = funkos.join("hello");
    write(hello.join("funko.yml"), "name: hello\nruntime: python\n");
    write(hello.join("handler.py"), HANDLER);
    write(secrets.join("hello/api-key"), "s3cr3t");
    let board = StatusBoard::default();
    board.pass_finished(funko_statuses(), 0);
    let docker = faaso_reconciler::DockerEngine::connect(namespace())
        .await
        .expect("a Docker engine must answer");
    let admin = AdminState {
        funkos_dir: funkos,
        secrets: SecretStore::new(secrets),
        token: Token::new(TOKEN).unwrap(),
        board,
        trigger: mpsc::unbounded_channel().0,
        engine: Arc::new(docker.clone()),
        builder: docker,
        traffic: faaso_admin::Traffic::none(),
        namespace: namespace(),
        limits: UploadLimits::default(),
        base_policy: faaso_reconciler::BasePolicy::Local,
        backend: "docker",
    };
    (faaso_admin::router(Arc::new(admin)), dir)
}

/// A gzipped tar of a valid funko named `name`.
fn funko_archive(name: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let yml = format!("name: {name}\nruntime: python\n");
    for (path, text) in [("funko.yml", yml.as_str()), ("handler.py", HANDLER)] {
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
fn request(op: &Operation, value: ParamValue, token: Option<&str>) -> Request<Body> {
    let uri = op.url(value);
    let mut builder = Request::builder().method(op.method.clone()).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let Some(body) = op.op.get("requestBody").map(resolve) else {
        return builder.body(Body::empty()).unwrap();
    };
    let content = body["content"].as_object().expect("requestBody content");
    assert_eq!(content.len(), 1, "{}: one request media type", op.label);
    let (media_type, media) = content.iter().next().unwrap();
    let bytes = match media_type.as_str() {
        "application/json" => serde_json::to_vec(&media["example"]).unwrap(),
        "application/gzip" => {
            let name = op.parameters.iter().find(|p| p["name"] == "name");
            funko_archive(&value(name.expect("an upload names its funko")))
        }
        _ => media["example"].as_str().expect("a body example").into(),
    };
    let builder = builder.header(header::CONTENT_TYPE, media_type.as_str());
    builder.body(Body::from(bytes)).unwrap()
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
async fn check_answer(op: &Operation, answer: Response<Body>, label: &str) -> Option<Value> {
    let status = answer.status();
    assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{label}");
    let content_type = answer.headers().get(header::CONTENT_TYPE).map(|v| {
        let v = v.to_str().unwrap();
        v.split(';').next().unwrap().trim().to_owned()
    });
    let unknown_route = status == StatusCode::NOT_FOUND && content_type.is_none();
    assert!(!unknown_route, "{label}: the router's 404");
    let documented = op.op["responses"].get(status.as_str());
    let documented = documented.unwrap_or_else(|| panic!("{label}: undocumented {status}"));
    let content = resolve(documented)["content"].as_object();
    let body = answer.into_body();
    let (Some(content), Some(content_type)) = (content, &content_type) else {
        let documented = content.map(|c| c.keys());
        let unlike = format!("{label}: {status} as {content_type:?}, documented {documented:?}");
        assert!(content.is_none() && content_type.is_none(), "{unlike}");
        let bytes = body.collect().await.unwrap().to_bytes();
        assert!(bytes.is_empty(), "{label}: {status} is documented bodiless");
        return None;
    };
    let media = content.get(content_type);
    let media = media.unwrap_or_else(|| panic!("{label}: {status} came as {content_type}"));
    if content_type != "application/json" {
        return None;
    }
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes);
    let body: Value = body.unwrap_or_else(|e| panic!("{label}: {status} is not JSON: {e}"));
    if let Err(problem) = validate(&media["schema"], &body) {
        panic!("{label}: {status} {body} does not match its schema: {problem}");
    }
    Some(body)
}

#[test]
fn the_document_is_whole() {
    assert_eq!(SPEC["openapi"], "3.2.0");
    assert_eq!(SPEC["info"]["version"], env!("CARGO_PKG_VERSION"));
    // Every $ref resolves.
    let mut stack = vec![&*SPEC];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                resolve(value);
                stack.extend(object.values());
            }
            Value::Array(array) => stack.extend(array),
            _ => {}
        }
    }
    // Every schema is a valid JSON Schema 2020-12.
    for (name, schema) in SPEC["components"]["schemas"].as_object().unwrap() {
        let valid = jsonschema::draft202012::meta::validate(schema);
        valid.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut ids = BTreeSet::new();
    for op in operations() {
        assert!(ids.insert(op.id), "{}: duplicate id", op.label);
        let responses = op.op["responses"].as_object();
        assert!(responses.is_some_and(|r| !r.is_empty()), "{}", op.label);
        op.url(example);
        op.secured();
    }
}

/// The fixture's namespace: its own, so the routes that ask Docker (logs, images, builds) never
/// find, let alone remove, what other tests or a real faaso made on a shared engine.
fn namespace() -> Namespace {
    let id = format!("openapi-test-{}", std::process::id());
    Namespace {
        network: format!("{id}-net"),
        prefix: id.clone(),
        labels: id,
    }
}

/// Removes the images the fixture's namespace built (the build route's), even after a failed
/// assertion.
struct RemoveBuiltImages;

impl Drop for RemoveBuiltImages {
    fn drop(&mut self) {
        let label = namespace().managed_filter();
        // A thread with a runtime of its own: this may run inside the test's runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            runtime.ok()?.block_on(async {
                let docker = bollard::Docker::connect_with_defaults().ok()?;
                let docker = docker.negotiate_version().await.ok()?;
                let filters = std::collections::HashMap::from([("label", vec![label])]);
                let options = bollard::query_parameters::ListImagesOptionsBuilder::new()
                    .filters(&filters)
                    .build();
                for image in docker.list_images(Some(options)).await.ok()? {
                    let none = None::<bollard::query_parameters::RemoveImageOptions>;
                    let _ = docker.remove_image(&image.id, none, None).await;
                }
                Some(())
            })
        });
        let _ = cleanup.join();
    }
}

#[tokio::test]
async fn every_operation_is_routed_secured_and_answers_as_documented() {
    let _cleanup = RemoveBuiltImages;
    let missing = |_: &Value| MISSING.to_owned();
    let variants: [(&str, ParamValue, Option<&str>); 4] = [
        ("examples", &example, Some(TOKEN)),
        ("missing", &missing, Some(TOKEN)),
        ("no token", &example, None),
        ("wrong token", &example, Some(WRONG_TOKEN)),
    ];
    for op in operations() {
        for (variant, value, token) in variants {
            let (app, _dir) = fixture().await;
            let request = request(&op, value, token);
            let label = format!("{} [{variant}: {}]", op.label, request.uri());
            let answer = send(&app, request).await;
            let status = answer.status();
            if token != Some(TOKEN) && op.secured() {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
                let sent = answer.headers().get(header::WWW_AUTHENTICATE);
                assert_eq!(sent, Some(&HeaderValue::from_static(CHALLENGE)), "{label}");
                let documented = &resolve(&op.op["responses"]["401"])["headers"];
                let header = &documented["WWW-Authenticate"]["schema"]["const"];
                assert_eq!(header, CHALLENGE, "{label}: documented");
            } else {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{label}");
            }
            let body = check_answer(&op, answer, &label).await;
            // Logs and instances are 502 without Docker and, with it, 404 unless such instances
            // run; removing and building images are 502 without Docker.
            let asks_docker = [
                "funkoLogs",
                "removeFunkoImages",
                "buildFunko",
                "funkoInstances",
                "instanceLogs",
                "restartInstance",
            ]
            .contains(&op.id);
            if variant == "examples" && !asks_docker {
                assert!(status.is_success(), "{label}: answered {status}: {body:?}");
            }
            if op.path == "/admin/openapi.json" {
                assert_eq!(body.as_ref(), Some(&*SPEC), "{label}: serves the file");
            }
        }
    }
}

#[tokio::test]
async fn undocumented_methods_answer_405_allowing_exactly_the_documented_ones() {
    let (app, _dir) = fixture().await;
    for path in SPEC["paths"].as_object().unwrap().keys() {
        let documented = methods(path);
        let mut allowed: BTreeSet<String> = documented.iter().map(|m| m.to_uppercase()).collect();
        // The router answers HEAD wherever it answers GET.
        if allowed.contains("GET") {
            allowed.insert("HEAD".into());
        }
        let url = Operation::new(path, documented[0]).url(example);
        let undocumented = METHODS.map(str::to_uppercase).into_iter();
        let undocumented: Vec<String> = undocumented.filter(|m| !allowed.contains(m)).collect();
        assert!(!undocumented.is_empty(), "{path}: all documented?");
        for method in undocumented {
            let request = Request::builder().method(method.as_str()).uri(&url);
            let request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
            let answer = send(&app, request.body(Body::empty()).unwrap()).await;
            let label = format!("{method} {url}");
            assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED, "{label}");
            let allow = answer.headers().get(header::ALLOW).expect("405 with Allow");
            let allow = allow.to_str().unwrap().split(',');
            let allow: BTreeSet<String> = allow.map(|m| m.trim().to_owned()).collect();
            assert_eq!(allow, allowed, "{label}: Allow");
        }
    }
}

/// One of each event. The match below stops compiling when a variant is added, so this list
/// (and the schema) cannot miss it.
fn every_event() -> Vec<AdminEvent> {
    let funko = || "hello".to_owned();
    let all = vec![
        AdminEvent::Pass {
            pass: 3,
            steps: 2,
            pending: vec![funko()],
        },
        AdminEvent::InstanceReady {
            funko: funko(),
            instance: "faaso-hello-1".into(),
        },
        AdminEvent::InstanceLeaving {
            funko: funko(),
            instance: "0f1e2d3c4b5a".into(),
        },
        AdminEvent::Deployed { funko: funko() },
        AdminEvent::Deleted { funko: funko() },
        AdminEvent::Scaled {
            funko: funko(),
            scale: 3,
        },
        AdminEvent::Secret {
            funko: funko(),
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

/// The schema of one event of the stream (OpenAPI 3.2's `itemSchema`), and that of its `data`.
fn event_schemas() -> (&'static Value, &'static Value) {
    let events = &SPEC["paths"]["/admin/events"]["get"]["responses"]["200"]["content"];
    let message = &events["text/event-stream"]["itemSchema"];
    let data = &resolve(message)["properties"]["data"];
    assert_eq!(data["contentMediaType"], "application/json");
    (message, &data["contentSchema"])
}

/// The events of an SSE text as a stream reader sees them (`{event, data}`, comments skipped).
fn sse_messages(text: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut data = Vec::new();
        let mut name = "message".to_owned();
        for line in block.lines().filter(|l| !l.starts_with(':')) {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => data.push(value),
                "event" => name = value.to_owned(),
                other => panic!("unexpected SSE field `{other}` in {block:?}"),
            }
        }
        if !data.is_empty() {
            messages.push(json!({ "event": name, "data": data.join("\n") }));
        }
    }
    messages
}

/// Checks one SSE message against the stream's item schema and its data against the event
/// schema; returns the event.
fn check_message(message: &Value) -> Value {
    let (item, data_schema) = event_schemas();
    if let Err(problem) = validate(item, message) {
        panic!("{message} does not match the stream's item schema: {problem}");
    }
    let data = message["data"].as_str().unwrap();
    let event: Value = serde_json::from_str(data).expect("data is JSON");
    if let Err(problem) = validate(data_schema, &event) {
        panic!("{event} does not match the event schema: {problem}");
    }
    event
}

#[test]
fn every_event_matches_the_event_schema() {
    let (_, schema) = event_schemas();
    let mut types = BTreeSet::new();
    for event in every_event() {
        let value = serde_json::to_value(&event).unwrap();
        let message = json!({ "event": "message", "data": value.to_string() });
        assert_eq!(check_message(&message), value);
        types.insert(value["type"].as_str().unwrap().to_owned());
    }
    // The item schema refuses what the old description let through unnoticed: a stream whose
    // events are not AdminEvents in a `data` field.
    let (item, _) = event_schemas();
    assert!(validate(item, &json!("data: {}")).is_err());
    assert!(validate(item, &json!({"event": "scaled", "data": "{}"})).is_err());
    // The discriminator (OpenAPI's, which JSON Schema ignores) maps each type to its schema.
    let mapping = &resolve(schema)["discriminator"]["mapping"];
    for (tag, target) in mapping.as_object().unwrap() {
        let target = json!({ "$ref": target });
        let constant = &resolve(&target)["properties"]["type"]["const"];
        assert_eq!(constant, tag.as_str(), "discriminator mapping");
    }
    assert_eq!(keys(mapping), types, "event types");
}

#[test]
fn funko_status_matches_its_schema_field_for_field() {
    let schema = &SPEC["components"]["schemas"]["FunkoStatus"];
    let properties = keys(&schema["properties"]);
    let required: BTreeSet<String> = serde_json::from_value(schema["required"].clone()).unwrap();
    assert_eq!(required, properties, "every field is required");
    for status in funko_statuses() {
        let value = serde_json::to_value(&status).unwrap();
        if let Err(problem) = validate(&component("FunkoStatus"), &value) {
            panic!("{value} does not match FunkoStatus's schema: {problem}");
        }
        assert_eq!(keys(&value), properties, "FunkoStatus's fields");
    }
}

#[test]
fn the_validator_refuses_wrong_shapes() {
    let mut status = serde_json::to_value(&funko_statuses()[0]).unwrap();
    status["image_created"] = json!("yesterday");
    assert!(validate(&component("FunkoStatus"), &status).is_err());
    let event = json!({"type": "exploded", "funko": "hello"});
    assert!(validate(&component("AdminEvent"), &event).is_err());
}

/// An authorized request with a body.
fn authorized(method: Method, uri: &str, content_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

/// Regression: the stream sent events as `{event, data}` messages while the description called
/// the stream a string; every event the router really sends must match the item schema and,
/// parsed, the event schema.
#[tokio::test]
async fn the_event_stream_sends_what_its_schema_describes() {
    let (app, _dir) = fixture().await;
    let subscribe = Request::builder()
        .uri("/admin/events")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let stream = send(&app, subscribe).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let content_type = stream.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut body = stream.into_body();
    let scale = authorized(
        Method::POST,
        "/admin/funkos/hello/scale",
        "application/json",
        br#"{"scale": 2}"#.to_vec(),
    );
    assert_eq!(send(&app, scale).await.status(), StatusCode::ACCEPTED);
    let secret = authorized(
        Method::PUT,
        "/admin/secrets/hello/token",
        "application/octet-stream",
        b"v".to_vec(),
    );
    assert_eq!(send(&app, secret).await.status(), StatusCode::NO_CONTENT);
    let delete = Request::builder()
        .method(Method::DELETE)
        .uri("/admin/funkos/hello")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, delete).await.status(), StatusCode::ACCEPTED);
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < 3 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame()).await;
        let frame = frame
            .expect("an event within 10 s")
            .expect("the stream stays open");
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        text.push_str(std::str::from_utf8(&data).unwrap());
        let complete = &text[..text.rfind("\n\n").map_or(0, |end| end + 2)];
        events = sse_messages(complete).iter().map(check_message).collect();
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["scaled", "secret", "deleted"], "{text}");
}

/// Regression: `{"scale": 41.0}` is an integer by JSON Schema's rules, and properties the schema
/// does not name are allowed; both were refused with 422.
#[tokio::test]
async fn a_scale_is_any_json_integer_and_extra_properties_are_ignored() {
    let (app, dir) = fixture().await;
    let spec = dir.path().join("funkos/hello/funko.yml");
    let schema = component("ScaleRequest");
    for (body, scale) in [
        (json!({"scale": 41.0}), 41),
        (json!({"scale": 3, "note": "extra", "": null}), 3),
        (json!({"scale": 1e2}), 100),
    ] {
        assert!(validate(&schema, &body).is_ok(), "the schema allows {body}");
        let answer = post_scale(&app, &body).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED, "{body}");
        let answer: Value =
            serde_json::from_slice(&answer.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(answer["to"], scale, "{body}");
        let written = std::fs::read_to_string(&spec).unwrap();
        assert!(
            written.contains(&format!("scale: {scale}\n")),
            "{body}: {written}"
        );
    }
    for body in [
        json!({"scale": 41.5}),
        json!({"scale": -1}),
        json!({"scale": 101.0}),
    ] {
        assert!(
            validate(&schema, &body).is_err(),
            "the schema refuses {body}"
        );
        let answer = post_scale(&app, &body).await;
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

/// `POST /admin/funkos/hello/scale` with `body`, authorized.
async fn post_scale(app: &axum::Router, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap();
    let request = authorized(
        Method::POST,
        "/admin/funkos/hello/scale",
        "application/json",
        bytes,
    );
    send(app, request).await
}

/// Regression: a secret set with no body answered 204 and stored an empty value.
#[tokio::test]
async fn a_secret_without_a_value_is_refused_and_nothing_is_stored() {
    let (app, dir) = fixture().await;
    let op = Operation::new("/admin/secrets/{funko}/{key}", "put");
    for (uri, file) in [
        ("/admin/secrets/hello/fresh", "secrets/hello/fresh"),
        ("/admin/secrets/hello/api-key", "secrets/hello/api-key"),
    ] {
        let before = std::fs::read(dir.path().join(file)).ok();
        let request = authorized(Method::PUT, uri, "application/octet-stream", Vec::new());
        let answer = send(&app, request).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{uri}");
        let body = check_answer(&op, answer, uri).await.expect("a JSON error");
        assert!(body["error"].as_str().unwrap().contains("empty"), "{body}");
        assert_eq!(std::fs::read(dir.path().join(file)).ok(), before, "{uri}");
    }
}

//! `PUT /admin/funkos/<name>` through the real router: good uploads land whole and replace the
//! old version atomically; every bad one is refused with a reason and leaves the funkos folder
//! exactly as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use faaso_admin::{AdminState, SecretStore, StatusBoard, Token, UploadLimits};
use faaso_reconciler::{Namespace, Trigger};
use http_body_util::BodyExt;
use tar::EntryType;
use tokio::sync::mpsc;
use tower::ServiceExt;

mod support;

const TOKEN: &str = "0123456789abcdef0123";
const SPEC: &str = "name: up\nruntime: python\n";
const HANDLER: &str = "def handle(request):\n    return {'hello': 'world'}\n";

struct Server {
    app: axum::Router,
    funkos: tempfile::TempDir,
    triggers: mpsc::UnboundedReceiver<Trigger>,
    _state_dir: tempfile::TempDir,
}

async fn server_with(limits: UploadLimits) -> Server {
    let funkos = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let (trigger, triggers) = mpsc::unbounded_channel();
    let docker = faaso_reconciler::DockerEngine::connect(Namespace::default())
        .await
        .unwrap();
    let state = Arc::new(AdminState {
        funkos_dir: funkos.path().to_owned(),
        secrets: SecretStore::new(state_dir.path().join("secrets")),
        token: Token::new(TOKEN).unwrap(),
        board: StatusBoard::default(),
        trigger,
        engine: Arc::new(docker.clone()),
        builder: docker,
        traffic: faaso_admin::Traffic::none(),
        namespace: Namespace::default(),
        limits,
        base_policy: faaso_reconciler::BasePolicy::Local,
        backend: "docker",
    });
    Server {
        app: faaso_admin::router(state),
        funkos,
        triggers,
        _state_dir: state_dir,
    }
}

async fn server() -> Server {
    server_with(UploadLimits::default()).await
}

impl Server {
    async fn put_as(
        &self,
        name: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::put(format!("/admin/funkos/{name}"))
            .header(header::CONTENT_TYPE, "application/gzip");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, json)
    }

    async fn put(&self, name: &str, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
        self.put_as(name, body, Some(TOKEN)).await
    }

    fn dir(&self) -> &Path {
        self.funkos.path()
    }
}

/// One tar entry, written raw so that paths the `tar` crate would refuse can be made.
struct Entry {
    path: String,
    kind: EntryType,
    mode: u32,
    data: Vec<u8>,
    link: String,
}

fn file(path: &str, data: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryType::Regular,
        mode: 0o644,
        data: data.as_bytes().to_vec(),
        link: String::new(),
    }
}

fn special(path: &str, kind: EntryType, link: &str) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode: 0o644,
        data: Vec::new(),
        link: link.into(),
    }
}

fn tar_gz(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_entry_type(e.kind);
        h.set_cksum();
        builder.append(&h, &e.data[..]).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn valid(extra: Vec<Entry>) -> Vec<u8> {
    let mut entries = vec![
        special("./", EntryType::Directory, ""),
        file("./funko.yml", SPEC),
        file("./handler.py", HANDLER),
    ];
    entries.extend(extra);
    tar_gz(&entries)
}

/// Everything under `dir`, hidden entries included: path → (kind, mode, content).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u32, Vec<u8>)> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let rel = path.strip_prefix(dir).unwrap().to_owned();
            if meta.is_dir() {
                all.insert(rel, ("dir".into(), mode, Vec::new()));
                stack.push(path);
            } else if meta.is_file() {
                all.insert(rel, ("file".into(), mode, std::fs::read(&path).unwrap()));
            } else {
                all.insert(rel, ("other".into(), mode, Vec::new()));
            }
        }
    }
    all
}

fn hidden_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn a_valid_funko_lands_and_a_new_version_replaces_it_whole() {
    let mut s = server().await;
    let mut script = file("./bin/run.sh", "#!/bin/sh\necho hi\n");
    script.mode = 0o775;
    let (status, answer) = s
        .put("up", valid(vec![file("lib/x.py", "X = 1\n"), script]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({
            "funko": "up",
            "status": "/admin/funkos/up",
            "events": "/admin/events",
            "replaced": false,
        })
    );
    let funko = s.dir().join("up");
    assert_eq!(
        std::fs::read_to_string(funko.join("funko.yml")).unwrap(),
        SPEC
    );
    assert_eq!(
        std::fs::read_to_string(funko.join("handler.py")).unwrap(),
        HANDLER
    );
    assert_eq!(
        std::fs::read_to_string(funko.join("lib/x.py")).unwrap(),
        "X = 1\n"
    );
    let mode = |p: &str| {
        std::fs::metadata(funko.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("handler.py"), 0o644);
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("lib"), 0o755);
    assert_eq!(mode(""), 0o755);
    assert_eq!(s.triggers.try_recv().unwrap(), Trigger::Requested);
    assert!(hidden_leftovers(s.dir()).is_empty());

    let v2 = "def handle(request):\n    return {'version': 2}\n";
    let body = tar_gz(&[file("funko.yml", SPEC), file("handler.py", v2)]);
    let (status, answer) = s.put("up", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["replaced"], true);
    assert_eq!(s.triggers.try_recv().unwrap(), Trigger::Requested);
    let after = snapshot(s.dir());
    let names: Vec<_> = after.keys().map(|p| p.display().to_string()).collect();
    assert_eq!(names, ["up", "up/funko.yml", "up/handler.py"]);
    assert_eq!(
        std::fs::read_to_string(funko.join("handler.py")).unwrap(),
        v2
    );
}

#[tokio::test]
async fn a_single_top_level_folder_named_like_the_funko_is_the_funko() {
    let s = server().await;
    let body = tar_gz(&[
        special("up/", EntryType::Directory, ""),
        file("up/funko.yml", SPEC),
        file("up/handler.py", HANDLER),
    ]);
    let (status, answer) = s.put("up", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let names: Vec<_> = snapshot(s.dir())
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(names, ["up", "up/funko.yml", "up/handler.py"]);
}

/// Each bad upload: its status, a phrase its message must hold.
fn bad_uploads() -> Vec<(&'static str, Vec<u8>, StatusCode, &'static str)> {
    let bad = StatusCode::BAD_REQUEST;
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    let large = StatusCode::PAYLOAD_TOO_LARGE;
    let fifo = special("pipe", EntryType::Fifo, "");
    vec![
        (
            "dot-dot",
            valid(vec![file("../x", "x")]),
            bad,
            "entry `../x` has a `..` component",
        ),
        (
            "nested dot-dot",
            valid(vec![file("lib/../../x", "x")]),
            bad,
            "`..` component",
        ),
        (
            "absolute",
            valid(vec![file("/etc/passwd", "x")]),
            bad,
            "entry `/etc/passwd` has an absolute path",
        ),
        (
            "symlink",
            valid(vec![special("lib.py", EntryType::Symlink, "/etc/passwd")]),
            bad,
            "entry `lib.py` is a symbolic link (to `/etc/passwd`)",
        ),
        (
            "hardlink",
            valid(vec![special("copy.py", EntryType::Link, "handler.py")]),
            bad,
            "entry `copy.py` is a hard link (to `handler.py`)",
        ),
        (
            "device",
            valid(vec![special("null", EntryType::Char, "")]),
            bad,
            "entry `null` is a device file",
        ),
        (
            "fifo",
            valid(vec![fifo]),
            bad,
            "entry `pipe` is a named pipe",
        ),
        (
            "duplicate",
            valid(vec![file("handler.py", "again")]),
            bad,
            "entry `handler.py` appears twice",
        ),
        (
            "name mismatch",
            tar_gz(&[
                file("funko.yml", "name: other\nruntime: python\n"),
                file("handler.py", HANDLER),
            ]),
            invalid,
            "funko.yml:1:7: field `name`: the name is `other` but the folder is `up`",
        ),
        (
            "invalid funko.yml",
            tar_gz(&[file(
                "funko.yml",
                "name: up\nruntime: python\nscale: many\n",
            )]),
            invalid,
            "funko.yml:3:",
        ),
        (
            "unknown runtime",
            tar_gz(&[file("funko.yml", "name: up\nruntime: pyhton\n")]),
            invalid,
            "funko.yml:2:10: field `runtime`",
        ),
        (
            "runtime outside the funko",
            tar_gz(&[file("funko.yml", "name: up\nruntime: /etc\n")]),
            invalid,
            "points outside the funko",
        ),
        (
            "no funko.yml",
            tar_gz(&[file("handler.py", HANDLER)]),
            invalid,
            "the uploaded folder has no funko.yml",
        ),
        (
            "bomb",
            support::gzip_bomb(
                &{
                    let mut h = tar::Header::new_gnu();
                    h.set_path("handler.py").unwrap();
                    h.set_size(1 << 30);
                    h.set_cksum();
                    h.as_bytes().to_vec()
                },
                1024,
            ),
            large,
            "entry `handler.py`: the files unpack to more than",
        ),
        (
            "zeros bomb",
            support::gzip_bomb(b"", 1024),
            large,
            "decompression bomb",
        ),
        (
            "too many entries",
            valid((0..20).map(|i| file(&format!("f{i}"), "")).collect()),
            large,
            "more than 16 entries",
        ),
        (
            "too deep",
            valid(vec![file(&vec!["d"; 40].join("/"), "")]),
            large,
            "folders deep",
        ),
        (
            "not gzip",
            b"PK\x03\x04 this is a zip".to_vec(),
            bad,
            "not a gzipped tar",
        ),
        ("empty", Vec::new(), bad, "the body is empty"),
        (
            "gzip, not tar",
            {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&[b'x'; 2000]).unwrap();
                gz.finish().unwrap()
            },
            bad,
            "not a gzipped tar",
        ),
    ]
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_reason_and_nothing_is_written() {
    let limits = UploadLimits {
        max_entries: 16,
        ..UploadLimits::default()
    };
    let s = server_with(limits).await;
    for with_previous in [false, true] {
        if with_previous {
            let (status, answer) = s.put("up", valid(vec![file("lib/x.py", "X = 1\n")])).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        }
        for (case, body, expected, phrase) in bad_uploads() {
            let before = snapshot(s.dir());
            let (status, answer) = s.put("up", body).await;
            let message = answer["error"].as_str().unwrap_or_default();
            eprintln!("{case}: {status} {message}");
            assert_eq!(status, expected, "{case}: {answer}");
            assert!(
                message.contains(phrase),
                "{case}: `{message}` lacks `{phrase}`"
            );
            assert!(
                !message.contains(".upload-"),
                "{case}: the staging path leaks: {message}"
            );
            assert_eq!(
                snapshot(s.dir()),
                before,
                "{case} changed the funkos folder"
            );
        }
    }
}

#[tokio::test]
async fn an_upload_over_the_compressed_limit_is_413_and_writes_nothing() {
    let limits = UploadLimits {
        max_compressed: 1024,
        ..UploadLimits::default()
    };
    let s = server_with(limits).await;
    let noise = noise(20_000);
    let big = valid(vec![file("noise.txt", &noise)]);
    assert!(big.len() > 1024);
    let (status, answer) = s.put("up", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("larger than 1 KiB")
    );
    assert!(snapshot(s.dir()).is_empty());
}

/// Letters that do not compress much.
fn noise(len: usize) -> String {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[tokio::test]
async fn an_upload_larger_than_axums_default_body_limit_is_fine() {
    let s = server().await;
    let body = valid(vec![file("data.txt", &noise(4 << 20))]);
    assert!(body.len() > 2 << 20);
    let (status, answer) = s.put("up", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

#[tokio::test]
async fn a_bad_name_in_the_url_is_400() {
    let s = server().await;
    let (status, answer) = s.put("Bad_Name", valid(vec![])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(snapshot(s.dir()).is_empty());
}

#[tokio::test]
async fn uploads_need_the_token() {
    let s = server().await;
    for token in [None, Some("wrong-token-wrong-token"), Some("")] {
        let (status, answer) = s.put_as("up", valid(vec![]), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    }
    assert!(snapshot(s.dir()).is_empty());
}

#[tokio::test]
async fn an_upload_over_a_real_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = s.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let body = valid(vec![]);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /admin/funkos/up HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(
        answer.contains(r#""status":"/admin/funkos/up""#),
        "{answer}"
    );
    assert!(s.dir().join("up/handler.py").is_file());
}

#[tokio::test]
async fn an_archive_made_by_the_tar_command_is_accepted() {
    let Ok(tar) = which_tar() else {
        eprintln!("no `tar` command; skipped");
        return;
    };
    let s = server().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("funko.yml"), SPEC).unwrap();
    std::fs::write(src.path().join("handler.py"), HANDLER).unwrap();
    // Longer than the 100 bytes of a tar header's name field: GNU tar writes a long-name entry.
    let deep = format!("lib/{}/mod.py", "long-folder-name".repeat(8));
    std::fs::create_dir_all(src.path().join(&deep).parent().unwrap()).unwrap();
    std::fs::write(src.path().join(&deep), "X = 1\n").unwrap();
    let out = std::process::Command::new(tar)
        .args(["czf", "-", "-C"])
        .arg(src.path())
        .arg(".")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, answer) = s.put("up", out.stdout).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        std::fs::read_to_string(s.dir().join("up").join(&deep)).unwrap(),
        "X = 1\n"
    );
}

fn which_tar() -> Result<&'static str, ()> {
    std::process::Command::new("tar")
        .arg("--version")
        .output()
        .map(|_| "tar")
        .map_err(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_leave_one_whole_version_and_readers_never_miss_it() {
    let s = Arc::new(server().await);
    let (status, _) = s.put("up", valid(vec![])).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let spec = s.dir().join("up/funko.yml");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut looks = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&spec).expect("funko.yml went missing");
                assert_eq!(text, SPEC);
                looks += 1;
            }
            looks
        })
    };
    let versions: Vec<String> = (0..12)
        .map(|i| format!("def handle(request):\n    return {{'version': {i}}}\n"))
        .collect();
    let uploads = versions.iter().map(|v| {
        let s = s.clone();
        let body = tar_gz(&[file("funko.yml", SPEC), file("handler.py", v)]);
        tokio::spawn(async move { s.put("up", body).await.0 })
    });
    for upload in uploads.collect::<Vec<_>>() {
        assert_eq!(upload.await.unwrap(), StatusCode::ACCEPTED);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(watcher.join().unwrap() > 0);
    let handler = std::fs::read_to_string(s.dir().join("up/handler.py")).unwrap();
    assert!(versions.contains(&handler), "{handler}");
    assert!(hidden_leftovers(s.dir()).is_empty());
    let names: Vec<_> = snapshot(s.dir())
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(names, ["up", "up/funko.yml", "up/handler.py"]);
}

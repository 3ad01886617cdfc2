//! Bad input, as a user meets it: the real `faaso` binary on broken funkos. Each must give one
//! clear error naming the file (line:column where there is one) and the field, and exit 1,
//! never a panic. None of these needs a Docker engine, but for the last few (module `served`),
//! which take the same input through `faaso reconcile --once` and a live `faaso server`.

mod common;
mod served;

use common::{Run, arg, faaso, faaso_in, repo_root, write_funko};

/// Where an error must point: a file relative to the funko folder, and its line and column.
struct At<'a>(&'a str, u32, u32);

/// One broken funko and what its error must say.
struct Case<'a> {
    folder: &'a str,
    files: &'a [(&'a str, &'a str)],
    at: Option<At<'a>>,
    field: Option<&'a str>,
    /// Further fragments the message must hold (the fix, the offending value).
    says: &'a [&'a str],
}

/// Writes the case's funko into a fresh folder and checks `validate`, `export` and `build`:
/// each exits 1 without a panic; `validate` and `export` point at the problem.
#[track_caller]
fn assert_rejected(case: Case) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_funko(tmp.path(), case.folder, case.files);
    let out = tmp.path().join("export");
    let validate = faaso(&["validate", arg(&dir)]).failure();
    let export = faaso(&["export", arg(&dir), arg(&out)]).failure();
    // build may reach the engine (or fail to); either way it must end in exit 1, not a panic.
    faaso(&["build", arg(&dir)]).failure();
    for run in [&validate, &export] {
        if let Some(At(file, line, column)) = &case.at {
            let located = format!("{}:{line}:{column}", dir.join(file).display());
            // `dir/./rt/x` names the same file as `dir/rt/x`; either reads fine.
            let stderr = run.stderr.replace("/./", "/");
            assert!(stderr.contains(&located), "expected `{located}`\n{run}");
        } else {
            assert!(
                run.stderr.contains(arg(&dir)),
                "expected the folder named\n{run}"
            );
        }
        if let Some(field) = case.field {
            let named = format!("field `{field}`");
            assert!(run.stderr.contains(&named), "expected `{named}`\n{run}");
        }
        for fragment in case.says {
            assert!(
                run.stderr.contains(fragment),
                "expected `{fragment}`\n{run}"
            );
        }
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "one funko, one error\n{run}"
        );
    }
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "a failed export must not leave files behind"
    );
    validate
}

#[test]
fn invalid_yaml_is_located() {
    assert_rejected(Case {
        folder: "broken",
        files: &[("funko.yml", "name: broken\nenv: [unclosed\n")],
        at: Some(At("funko.yml", 2, 6)),
        field: Some("env"),
        says: &[],
    });
    assert_rejected(Case {
        folder: "broken",
        files: &[("funko.yml", "name: broken\nenv:\n  A: 1\n  - b\n")],
        at: Some(At("funko.yml", 4, 5)),
        field: Some("env.A"),
        says: &[],
    });
}

#[test]
fn a_wrong_type_names_the_field() {
    assert_rejected(Case {
        folder: "typed",
        files: &[("funko.yml", "name: typed\nscale: lots\n")],
        at: Some(At("funko.yml", 2, 8)),
        field: Some("scale"),
        says: &[],
    });
    assert_rejected(Case {
        folder: "typed",
        files: &[(
            "funko.yml",
            "name: typed\nhealthcheck:\n  path: /ping\n  interval: 5 parsecs\n",
        )],
        at: Some(At("funko.yml", 4, 13)),
        field: Some("healthcheck.interval"),
        says: &["5 parsecs", "5s"],
    });
    assert_rejected(Case {
        folder: "typed",
        files: &[("funko.yml", "name: typed\nenv:\n  A: [1]\n")],
        at: Some(At("funko.yml", 3, 3)),
        field: Some("env.A"),
        says: &["string, number or boolean"],
    });
}

#[test]
fn an_unknown_key_suggests_the_field_meant() {
    assert_rejected(Case {
        folder: "typo",
        files: &[("funko.yml", "name: typo\nscael: 2\n")],
        at: Some(At("funko.yml", 2, 1)),
        field: Some("scael"),
        says: &["did you mean `scale`?"],
    });
    assert_rejected(Case {
        folder: "typo",
        files: &[("funko.yml", "name: typo\nhealthcheck:\n  paht: /health\n")],
        at: Some(At("funko.yml", 3, 3)),
        field: Some("healthcheck.paht"),
        says: &["did you mean `path`?"],
    });
}

#[test]
fn bad_names_are_rejected_with_the_rule() {
    let long = "a".repeat(41);
    for (folder, yaml, says) in [
        ("dots", "name: ../x\n", "lowercase letters, digits and `-`"),
        ("Hello", "name: Hello\n", "lowercase"),
        (long.as_str(), &format!("name: {long}\n"), "40"),
        ("empty", "name: ''\n", "empty"),
    ] {
        let run = assert_rejected(Case {
            folder,
            files: &[("funko.yml", yaml)],
            at: Some(At("funko.yml", 1, 7)),
            field: Some("name"),
            says: &[says],
        });
        // The name rule is the problem, not the folder: a user must not be sent to rename it.
        assert!(!run.stderr.contains("folder is"), "{run}");
    }
}

#[test]
fn a_missing_runtime_lists_the_ones_there_are() {
    assert_rejected(Case {
        folder: "cobol",
        files: &[("funko.yml", "name: cobol\nruntime: cobol\n")],
        at: None,
        field: Some("runtime"),
        says: &["cobol", "python", "node", "binary", "flask", "express"],
    });
    assert_rejected(Case {
        folder: "pathrt",
        files: &[("funko.yml", "name: pathrt\nruntime: ./nowhere\n")],
        at: None,
        field: Some("runtime"),
        says: &["nowhere", "runtime.yml"],
    });
}

#[test]
fn a_template_with_an_unknown_variable_points_into_the_template() {
    for (template, variable, line, column) in [
        (
            "FROM scratch\nCOPY {{options.nope}} /x\n",
            "options.nope",
            2,
            6,
        ),
        ("FROM scratch\n\nLABEL x={{nosuch}}\n", "nosuch", 3, 9),
    ] {
        assert_rejected(Case {
            folder: "templated",
            files: &[
                ("funko.yml", "name: templated\nruntime: ./rt\n"),
                ("rt/runtime.yml", "description: a runtime with a typo\n"),
                ("rt/Dockerfile.hbs", template),
            ],
            at: Some(At("rt/Dockerfile.hbs", line, column)),
            field: None,
            says: &[variable],
        });
    }
}

#[test]
fn a_folder_without_funko_yml_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("nothing");
    std::fs::create_dir(&empty).unwrap();
    write_funko(
        tmp.path(),
        "code-only",
        &[("handler.py", "def handle(r): pass\n")],
    );
    for dir in [empty, tmp.path().join("code-only")] {
        let out = tmp.path().join("export");
        for run in [
            faaso(&["validate", arg(&dir)]),
            faaso(&["export", arg(&dir), arg(&out)]),
            faaso(&["build", arg(&dir)]),
        ] {
            let run = run.failure();
            assert!(run.stderr.contains(arg(&dir)), "{run}");
            assert!(run.stderr.contains("funko.yml"), "{run}");
        }
    }
}

#[test]
fn a_name_that_disagrees_with_its_folder_says_both() {
    let run = assert_rejected(Case {
        folder: "hello",
        files: &[("funko.yml", "# a comment first\nname: other\n")],
        at: Some(At("funko.yml", 2, 7)),
        field: Some("name"),
        says: &["`other`", "`hello`"],
    });
    assert!(run.stderr.contains("folder"), "{run}");
}

#[test]
fn validate_lists_every_bad_funko_not_just_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bad = [
        ("a-yaml", "name: a-yaml\nenv: [\n"),
        ("b-type", "name: b-type\nscale: lots\n"),
        ("c-typo", "name: c-typo\nscael: 1\n"),
        ("d-mismatch", "name: other\n"),
        ("e-runtime", "name: e-runtime\nruntime: cobol\n"),
    ];
    for (folder, yaml) in bad {
        write_funko(root, folder, &[("funko.yml", yaml)]);
    }
    write_funko(root, "f-missing", &[("handler.py", "")]);
    write_funko(
        root,
        "good",
        &[
            ("funko.yml", "name: good\nruntime: python\n"),
            ("handler.py", "def handle(request):\n    return 'ok'\n"),
        ],
    );
    let run = faaso(&["validate", arg(root)]).failure();
    for folder in bad.iter().map(|(f, _)| *f).chain(["f-missing"]) {
        let named = root.join(folder);
        assert!(
            run.stderr.contains(arg(&named)),
            "`{folder}` not reported\n{run}"
        );
    }
    assert!(!run.stderr.contains(arg(&root.join("good"))), "{run}");
    assert!(run.stderr.contains("6 problems"), "{run}");

    // Several paths on the command line: every one is checked too.
    let run = faaso(&[
        "validate",
        arg(&root.join("b-type")),
        arg(&root.join("c-typo")),
    ])
    .failure();
    assert!(
        run.stderr.contains("b-type") && run.stderr.contains("c-typo"),
        "{run}"
    );
}

#[test]
fn the_example_funkos_are_valid() {
    let examples = std::fs::read_dir(common::repo_root().join("funkos"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("funko.yml").is_file())
        .count();
    assert!(examples >= 6, "a hello and a config funko per runtime");
    let run = faaso(&["validate", "funkos"]).success();
    assert!(
        run.stdout.contains(&format!("{examples} funkos valid")),
        "{run}"
    );
}

#[test]
fn schema_prints_the_committed_json_schema() {
    let run = faaso(&["schema"]).success();
    let committed =
        std::fs::read_to_string(common::repo_root().join("schema/funko.schema.json")).unwrap();
    assert_eq!(run.stdout, committed);
    let parsed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(parsed["properties"]["name"].is_object(), "{parsed:#}");
}

#[test]
fn runtimes_lists_the_built_in_ones_with_a_description() {
    let run = faaso(&["runtimes"]).success();
    for runtime in ["python", "node", "binary", "flask", "express"] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(runtime))
            .unwrap_or_else(|| panic!("`{runtime}` not listed\n{run}"));
        assert!(line.len() > runtime.len() + 10, "no description: {line}");
    }
}

#[test]
fn new_makes_a_valid_funko_and_never_overwrites_one() {
    let tmp = tempfile::tempdir().unwrap();
    let funkos = tmp.path().join("funkos");
    for runtime in ["python", "node", "binary", "flask", "express"] {
        let name = format!("x-{runtime}");
        faaso(&["new", &name, "--runtime", runtime, "--dir", arg(&funkos)]).success();
        let dir = funkos.join(&name);
        let spec = std::fs::read_to_string(dir.join("funko.yml")).unwrap();
        assert!(spec.contains(&format!("name: {name}")), "{spec}");
        faaso(&["validate", arg(&dir)]).success();

        let mine = format!("name: {name}\nruntime: {runtime}\nscale: 3\n");
        std::fs::write(dir.join("funko.yml"), &mine).unwrap();
        let again = faaso(&["new", &name, "--runtime", runtime, "--dir", arg(&funkos)]).failure();
        assert!(again.stderr.contains("already exists"), "{again}");
        let after = std::fs::read_to_string(dir.join("funko.yml")).unwrap();
        assert_eq!(after, mine, "an existing funko must be left alone");
    }
    // The default --dir is ./funkos, relative to where faaso runs.
    faaso_in(tmp.path(), &["new", "y", "--runtime", "python"], &[]).success();
    assert!(funkos.join("y/funko.yml").is_file());
}

#[test]
fn new_links_the_schema_for_editors_in_a_checkout() {
    // In this repository: funkos/<name>/funko.yml sees ../../schema/funko.schema.json, as the
    // README promises and the example funkos have it.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("schema")).unwrap();
    let schema = repo_root().join("schema/funko.schema.json");
    std::fs::copy(&schema, tmp.path().join("schema/funko.schema.json")).unwrap();
    faaso_in(tmp.path(), &["new", "hi", "--runtime", "node"], &[]).success();
    let spec = std::fs::read_to_string(tmp.path().join("funkos/hi/funko.yml")).unwrap();
    let first = spec.lines().next().unwrap();
    assert_eq!(
        first, "# yaml-language-server: $schema=../../schema/funko.schema.json",
        "{spec}"
    );
    let example = std::fs::read_to_string(repo_root().join("funkos/hello-python/funko.yml"));
    assert_eq!(example.unwrap().lines().next(), Some(first));
    faaso(&["validate", arg(&tmp.path().join("funkos/hi"))]).success();
}

#[test]
fn new_rejects_a_bad_name_or_runtime_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, runtime, says) in [
        ("Bad", "python", "lowercase"),
        ("../escape", "python", "`.`"),
        ("fine", "cobol", "cobol"),
    ] {
        let run = faaso(&["new", name, "--runtime", runtime, "--dir", arg(tmp.path())]).failure();
        assert!(run.stderr.contains(says), "{run}");
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing may be created"
    );
    assert!(!tmp.path().parent().unwrap().join("escape").exists());
}

#[test]
fn export_writes_a_plain_docker_build_context() {
    let tmp = tempfile::tempdir().unwrap();
    for (funko, glue) in [
        ("hello-python", "faaso_server.py"),
        ("config-node", "faaso_server.js"),
    ] {
        let out = tmp.path().join(funko);
        let src = common::repo_root().join("funkos").join(funko);
        let run = faaso(&["export", arg(&src), arg(&out)]).success();
        assert!(run.stdout.contains(arg(&out)), "{run}");
        let dockerfile = std::fs::read_to_string(out.join("Dockerfile")).unwrap();
        assert!(dockerfile.contains("FROM "), "{dockerfile}");
        assert!(
            !dockerfile.contains("{{"),
            "unrendered template:\n{dockerfile}"
        );
        assert!(
            out.join(glue).is_file(),
            "the runtime glue `{glue}` is missing"
        );
        let handler = if glue.ends_with(".py") {
            "handler.py"
        } else {
            "handler.js"
        };
        assert_eq!(
            std::fs::read(out.join(handler)).unwrap(),
            std::fs::read(src.join(handler)).unwrap(),
            "the funko's own code is exported as is"
        );
        // Exporting over a non-empty folder would mix two contexts.
        let again = faaso(&["export", arg(&src), arg(&out)]).failure();
        assert!(again.stderr.contains(arg(&out)), "{again}");
    }
}

#[test]
fn an_unreadable_funko_yml_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("binary");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("funko.yml"), b"\xff\xfe\x00name").unwrap();
    let run = faaso(&["validate", arg(&dir)]).failure();
    assert!(run.stderr.contains("funko.yml"), "{run}");
    for yaml in [
        "",
        "- a\n- b\n",
        "name:\n",
        "name: 5\n",
        "{{{{\n",
        "name: x\nname: x\n",
    ] {
        let dir = write_funko(tmp.path(), "x", &[("funko.yml", yaml)]);
        faaso(&["validate", arg(&dir)]).failure();
    }
}

/// The funko.yml of a `binary` funko whose option smuggles Dockerfile lines (issue 24).
const INJECTED: &str = "name: inject\nruntime: binary\noptions: {executable: \"app /funko/app\\nUSER 0:0\\nRUN echo pwned\"}\n";

#[test]
fn an_option_that_would_inject_dockerfile_lines_is_refused_with_its_field() {
    let run = assert_rejected(Case {
        folder: "inject",
        files: &[("funko.yml", INJECTED), ("app", "x")],
        at: Some(At("funko.yml", 3, 23)),
        field: Some("options.executable"),
        says: &["control character"],
    });
    assert!(!run.stderr.contains("panicked"), "{run}");
    // Without a control character, the runtime's pattern still keeps it one token.
    assert_rejected(Case {
        folder: "spaced",
        files: &[
            (
                "funko.yml",
                "name: spaced\nruntime: binary\noptions:\n  executable: app /etc/passwd\n",
            ),
            ("app", "x"),
        ],
        at: Some(At("funko.yml", 4, 15)),
        field: Some("options.executable"),
        says: &["does not match", "a string matching"],
    });
    assert_rejected(Case {
        folder: "undeclared",
        files: &[(
            "funko.yml",
            "name: undeclared\nruntime: python\noptions:\n  entrypoint: x\n",
        )],
        at: Some(At("funko.yml", 4, 15)),
        field: Some("options.entrypoint"),
        says: &["has no option `entrypoint`", "it takes: handler"],
    });
}

#[test]
fn pids_limit_zero_is_refused_not_sent_to_docker_as_unlimited() {
    assert_rejected(Case {
        folder: "pids",
        files: &[(
            "funko.yml",
            "name: pids\nruntime: python\nhardening:\n  pids_limit: 0\n",
        )],
        at: Some(At("funko.yml", 4, 15)),
        field: Some("hardening.pids_limit"),
        says: &["from 1 to 4194304"],
    });
}

#[test]
fn a_huge_duration_is_refused_with_its_field() {
    assert_rejected(Case {
        folder: "huge",
        files: &[(
            "funko.yml",
            "name: huge\nruntime: python\nhealthcheck: {interval: 300000000000y}\n",
        )],
        at: Some(At("funko.yml", 3, 25)),
        field: Some("healthcheck.interval"),
        says: &["longer than a day"],
    });
}

/// The same bad input through the commands that reach an engine.
mod through_the_engine {
    use std::time::Duration;

    use super::*;
    use served::{Served, http};

    /// A gzipped tar of the folder `dir`, as `PUT /admin/funkos/<name>` takes it.
    fn archive(dir: &std::path::Path) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(".", dir).unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn reconcile_once_refuses_the_injection_and_names_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let funkos = tmp.path().join("funkos");
        write_funko(&funkos, "inject", &[("funko.yml", INJECTED), ("app", "x")]);
        let id = format!("bi{}", std::process::id());
        let run = faaso_in(
            tmp.path(),
            &["reconcile", arg(&funkos), "--once"],
            &[
                ("FAASO_PREFIX", &id),
                ("FAASO_LABELS", &id),
                ("FAASO_NETWORK", &format!("{id}-net")),
                ("FAASO_STATE_DIR", arg(&tmp.path().join("state"))),
            ],
        );
        common::cleanup::remove_namespace(&id);
        assert_eq!(run.code, Some(1), "{run}");
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(out.contains("options.executable"), "{run}");
        assert!(out.contains("funko.yml:3"), "{run}");
        assert!(!out.contains("panicked"), "{run}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_served_folder_refuses_bad_input_and_keeps_serving_the_others() {
        let served = Served::start_with(&["hello-python"]).await;
        let client = http();
        served
            .eventually(Duration::from_secs(180), "hello-python served", || async {
                let answer = client.get(served.url("/funko/hello-python/")).send().await;
                answer.is_ok_and(|r| r.status().is_success())
            })
            .await;

        // An upload with the injection: 422, naming the field, and nothing swapped in.
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_funko(
            tmp.path(),
            "inject",
            &[("funko.yml", INJECTED), ("app", "x")],
        );
        let answer = client
            .put(served.admin_url("/admin/funkos/inject"))
            .bearer_auth(&served.token)
            .body(archive(&dir))
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap();
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("options.executable"), "{body}");
        assert!(!served.funkos().join("inject").exists());

        // A folder with a huge duration dropped in by hand: refused with its field; the server
        // stays up and the others stay served.
        write_funko(
            &served.funkos(),
            "huge",
            &[
                (
                    "funko.yml",
                    "name: huge\nruntime: python\nhealthcheck: {interval: 300000000000y}\n",
                ),
                ("handler.py", "def handle(request):\n    return 'x'\n"),
            ],
        );
        served
            .eventually(Duration::from_secs(60), "huge reported", || async {
                served.status("huge").await.is_some_and(|s| {
                    s["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("healthcheck.interval"))
                })
            })
            .await;
        let huge = served.status("huge").await.unwrap();
        assert!(
            huge["error"]
                .as_str()
                .unwrap()
                .contains("longer than a day"),
            "{huge}"
        );
        for _ in 0..5 {
            let answer = client
                .get(served.url("/funko/hello-python/"))
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "{}", served.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(!served.log().contains("panicked"), "{}", served.log());
        assert!(served.running("huge").await.is_empty());
    }
}

/// Bugs these tests found once; they stay to keep them fixed.
mod regressions {
    use super::*;

    #[test]
    fn a_missing_runtime_is_located() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_funko(
            tmp.path(),
            "cobol",
            &[("funko.yml", "name: cobol\nruntime: cobol\n")],
        );
        let run = faaso(&["validate", arg(&dir)]).failure();
        let located = format!("{}:2:10", dir.join("funko.yml").display());
        assert!(run.stderr.contains(&located), "{run}");
    }

    #[test]
    fn build_names_the_file_of_a_missing_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_funko(
            tmp.path(),
            "cobol",
            &[("funko.yml", "name: cobol\nruntime: cobol\n")],
        );
        let run = faaso(&["build", arg(&dir)]).failure();
        assert!(run.stderr.contains("funko.yml"), "{run}");
        assert!(run.stderr.contains("field `runtime`"), "{run}");
    }

    #[test]
    fn the_position_is_given_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_funko(
            tmp.path(),
            "typed",
            &[("funko.yml", "name: typed\nscale: lots\n")],
        );
        let run = faaso(&["validate", arg(&dir)]).failure();
        assert!(!run.stderr.contains("at line"), "{run}");
    }

    #[test]
    fn messages_do_not_leak_rust_internals() {
        let tmp = tempfile::tempdir().unwrap();
        for (folder, files) in [
            ("a", vec![("funko.yml", "name: a\nscale: -1\n")]),
            ("b", vec![("funko.yml", "name:\n")]),
            ("c", vec![("funko.yml", "name: c\nname: c\n")]),
            (
                "d",
                vec![
                    ("funko.yml", "name: d\nruntime: ./rt\n"),
                    ("rt/runtime.yml", "description: x\n"),
                    ("rt/Dockerfile.hbs", "FROM {{nosuch}}\n"),
                ],
            ),
        ] {
            let dir = write_funko(tmp.path(), folder, &files);
            let run = faaso(&["validate", arg(&dir)]).failure();
            for rust in ["u32", "Option<", "Some(", "Policy", "Options"] {
                assert!(
                    !run.stderr.contains(rust),
                    "`{rust}` in a user message\n{run}"
                );
            }
        }
    }
}

//! `BuildContext`: a funko merged with its runtime — the files `docker build` gets, and their hash.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use sha2::{Digest, Sha256};

use crate::load::{Funko, SPEC_FILE};
use crate::name::FunkoName;
use crate::probe::{PROBE, PROBE_FILE};
use crate::problem::Problem;
use crate::runtime::{self, BaseChoice, DOCKERFILE_TEMPLATE, Runtime};

/// The name Docker looks for at the root of the context.
const DOCKERFILE: &str = "Dockerfile";
/// Hex digits of the content hash kept in the image tag: 64 bits, ample for one host's images.
const TAG_HASH_LEN: usize = 16;

/// One file of a build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Unix permission bits (the executable bit matters to `COPY`).
    pub mode: u32,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// A complete Docker build context: runtime glue, funko files and the rendered Dockerfile.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The funko it was made from.
    pub name: FunkoName,
    /// Every file by `/`-separated relative path, the Dockerfile included.
    pub files: BTreeMap<String, ContextFile>,
}

impl BuildContext {
    /// Merges `funko` with its runtime (if any) and renders the Dockerfile. `base` picks which of
    /// the runtime's base images the Dockerfile starts from.
    pub fn assemble(funko: &Funko, base: BaseChoice) -> Result<Self, Problem> {
        Self::assemble_with(funko, |_| base)
    }

    /// Like [`BuildContext::assemble`], letting `choose_base` pick the base image once the
    /// runtime is known (for example: the local image if the engine has it).
    pub fn assemble_with(
        funko: &Funko,
        choose_base: impl FnOnce(&Runtime) -> BaseChoice,
    ) -> Result<Self, Problem> {
        let spec_file = funko.dir.join(SPEC_FILE);
        let funko_files = funko_files(&funko.dir)?;
        let mut files = BTreeMap::new();
        match &funko.spec.runtime {
            None => {
                if !funko_files.contains_key(DOCKERFILE) {
                    return Err(Problem::whole(
                        &spec_file,
                        "names no `runtime` and the funko has no Dockerfile; add `runtime: python` (see `faaso runtimes`) or a Dockerfile",
                    ));
                }
            }
            Some(name) => {
                let runtime = runtime::resolve(&funko.dir, name)
                    .map_err(|message| funko.field_problem("runtime", message))?;
                for (path, bytes) in &runtime.glue {
                    let mode = if bytes.starts_with(b"#!") {
                        0o755
                    } else {
                        0o644
                    };
                    files.insert(
                        path.clone(),
                        ContextFile {
                            mode,
                            bytes: bytes.clone(),
                        },
                    );
                }
                let names: BTreeSet<String> =
                    files.keys().chain(funko_files.keys()).cloned().collect();
                let base = choose_base(&runtime);
                let dockerfile = render_dockerfile(funko, &runtime, base, names)?;
                files.insert(
                    DOCKERFILE.to_owned(),
                    ContextFile {
                        mode: 0o644,
                        bytes: dockerfile.into_bytes(),
                    },
                );
            }
        }
        // Funko files win over runtime files of the same path, as documented.
        files.extend(funko_files);
        // Every image can carry the probe, a funko's own Dockerfile included (it is told how).
        files.insert(
            PROBE_FILE.to_owned(),
            ContextFile {
                mode: 0o755,
                bytes: PROBE.to_vec(),
            },
        );
        Ok(Self {
            name: funko.spec.name.clone(),
            files,
        })
    }

    /// The content hash of every file's path, mode and bytes: order- and mtime-independent.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        for (path, file) in &self.files {
            hasher.update((path.len() as u64).to_le_bytes());
            hasher.update(path.as_bytes());
            hasher.update(file.mode.to_le_bytes());
            hasher.update((file.bytes.len() as u64).to_le_bytes());
            hasher.update(&file.bytes);
        }
        hex::encode(hasher.finalize())[..TAG_HASH_LEN].to_owned()
    }

    /// The rendered Dockerfile.
    pub fn dockerfile(&self) -> &str {
        self.files
            .get(DOCKERFILE)
            .and_then(|f| std::str::from_utf8(&f.bytes).ok())
            .unwrap_or_default()
    }

    /// The context as an uncompressed tar archive, as the Docker build API takes it.
    /// Headers carry no mtimes or owners, so the same context gives the same bytes.
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, file) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.bytes.len() as u64);
            header.set_mode(file.mode);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, path, file.bytes.as_slice())?;
        }
        builder.into_inner()
    }

    /// Writes the context into `out`, a folder that plain `docker build` accepts.
    pub fn export(&self, out: &Path) -> Result<(), Problem> {
        for (path, file) in &self.files {
            let target = out.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Problem::whole(parent, format!("cannot be created: {e}")))?;
            }
            let mut handle = std::fs::File::create(&target)
                .map_err(|e| Problem::whole(&target, format!("cannot be written: {e}")))?;
            handle
                .write_all(&file.bytes)
                .map_err(|e| Problem::whole(&target, format!("cannot be written: {e}")))?;
            set_mode(&target, file.mode)
                .map_err(|e| Problem::whole(&target, format!("cannot set its mode: {e}")))?;
        }
        Ok(())
    }
}

/// A handlebars registry as runtimes expect it: strict (a missing variable is an error) and
/// without HTML escaping (Dockerfiles are not HTML).
pub(crate) fn registry() -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(handlebars::no_escape);
    registry
}

fn render_dockerfile(
    funko: &Funko,
    runtime: &Runtime,
    base: BaseChoice,
    names: BTreeSet<String>,
) -> Result<String, Problem> {
    let options = runtime_options(funko, runtime)?;
    let data = serde_json::json!({
        "name": funko.spec.name.as_str(),
        "base_image": runtime.base_image(base),
        // The official images lack what a local base image was made with (Flask, Express):
        // a template installs it only on them, where a registry (and so a package index) answers.
        "official": base == BaseChoice::Official,
        "options": options,
    });
    let mut registry = registry();
    registry.register_helper("exists", Box::new(Exists(names)));
    registry.register_helper("quote", Box::new(quote));
    registry
        .render_template(&runtime.dockerfile_template, &data)
        .map_err(|e| Problem {
            file: runtime.origin.join(DOCKERFILE_TEMPLATE),
            line: e.line_no.map(|l| l as u64),
            column: e.column_no.map(|c| c as u64),
            field: None,
            message: format!(
                "cannot be rendered for funko `{}`: {}",
                funko.spec.name,
                template_reason(e.reason())
            ),
        })
}

/// The runtime's defaults overlaid by the funko's `options:`, each value checked against the
/// runtime's declaration, so that no value can do more in the Dockerfile than fill its place.
fn runtime_options(
    funko: &Funko,
    runtime: &Runtime,
) -> Result<BTreeMap<String, serde_json::Value>, Problem> {
    let mut options: BTreeMap<String, serde_json::Value> = runtime
        .meta
        .options
        .iter()
        .map(|(key, decl)| (key.clone(), decl.default.clone()))
        .collect();
    for (key, value) in &funko.spec.options {
        let field = format!("options.{key}");
        let Some(decl) = runtime.meta.options.get(key) else {
            let known: Vec<&str> = runtime.meta.options.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "it takes none".to_owned()
            } else {
                format!("it takes: {}", known.join(", "))
            };
            return Err(funko.field_problem(
                &field,
                format!(
                    "the runtime `{}` has no option `{key}`; {known}",
                    runtime.name
                ),
            ));
        };
        let checked = decl
            .check(&value.0)
            .map_err(|why| funko.field_problem(&field, format!("{why}; {}", decl.describe())))?;
        options.insert(key.clone(), checked);
    }
    Ok(options)
}

/// `{{quote options.x}}`: the value as one JSON string, for exec-form lines (`CMD ["a", …]`)
/// where it must stay one argument whatever it holds.
fn quote(
    helper: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let value = helper
        .param(0)
        .map(|p| p.value())
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("quote", 0))?;
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    out.write(&serde_json::Value::String(text).to_string())?;
    Ok(())
}

/// A handlebars failure in runtime authors' terms.
fn template_reason(reason: &RenderErrorReason) -> String {
    match reason {
        RenderErrorReason::MissingVariable(Some(path)) => format!(
            "unknown variable `{path}` (templates see `name`, `base_image`, `official`, `options.<option>` and the helpers `exists` and `quote`; declare an option in runtime.yml)"
        ),
        other => other.to_string(),
    }
}

/// `{{#if (exists "requirements.txt")}}`: whether the merged context has that file.
struct Exists(BTreeSet<String>);

impl HelperDef for Exists {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let path = helper
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or_else(|| RenderErrorReason::ParamNotFoundForName("exists", "path".into()))?;
        let present =
            self.0.contains(path) || self.0.iter().any(|f| f.starts_with(&format!("{path}/")));
        Ok(ScopedJson::Derived(serde_json::Value::Bool(present)))
    }
}

/// The funko's own files, minus funko.yml (scale and env changes must not change the image).
fn funko_files(dir: &Path) -> Result<BTreeMap<String, ContextFile>, Problem> {
    let mut files = BTreeMap::new();
    for file in crate::files::funko_files(dir)? {
        if file.rel == SPEC_FILE {
            continue;
        }
        let bytes = std::fs::read(&file.path)
            .map_err(|e| Problem::whole(&file.path, format!("cannot be read: {e}")))?;
        files.insert(
            file.rel,
            ContextFile {
                mode: file.mode,
                bytes,
            },
        );
    }
    Ok(files)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_funko;

    fn funko_in(root: &Path, name: &str, yml: &str, files: &[(&str, &str)]) -> Funko {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(SPEC_FILE), yml).unwrap();
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        load_funko(&dir).unwrap()
    }

    #[test]
    fn the_hash_ignores_order_mtime_scale_and_ignored_files() {
        let tmp = tempfile::tempdir().unwrap();
        let a = funko_in(
            tmp.path(),
            "a/f",
            "name: f\nruntime: python\n",
            &[("handler.py", "x"), ("lib/b.py", "y")],
        );
        let first = BuildContext::assemble(&a, BaseChoice::Local)
            .unwrap()
            .content_hash();
        // Same content written in another order, later, with another scale and an ignored file.
        let b = funko_in(
            tmp.path(),
            "b/f",
            "name: f\nruntime: python\nscale: 5\n",
            &[
                ("lib/b.py", "y"),
                (".gitignore", "*.pyc\n"),
                ("handler.py", "x"),
                ("junk.pyc", "z"),
            ],
        );
        std::fs::remove_file(b.dir.join(".gitignore")).unwrap();
        std::fs::write(b.dir.join(".dockerignore"), "*.pyc\n").unwrap();
        let ctx = BuildContext::assemble(&b, BaseChoice::Local).unwrap();
        assert!(!ctx.files.contains_key("junk.pyc"));
        let mut without_ignore_file = ctx.clone();
        without_ignore_file.files.remove(".dockerignore");
        assert_eq!(without_ignore_file.content_hash(), first);
    }

    #[test]
    fn the_hash_changes_with_code_and_base_image() {
        let tmp = tempfile::tempdir().unwrap();
        let f = funko_in(
            tmp.path(),
            "f",
            "name: f\nruntime: python\n",
            &[("handler.py", "x")],
        );
        let local = BuildContext::assemble(&f, BaseChoice::Local).unwrap();
        let official = BuildContext::assemble(&f, BaseChoice::Official).unwrap();
        assert_ne!(local.content_hash(), official.content_hash());
        std::fs::write(f.dir.join("handler.py"), "changed").unwrap();
        let changed = BuildContext::assemble(&f, BaseChoice::Local).unwrap();
        assert_ne!(local.content_hash(), changed.content_hash());
        assert_eq!(local.content_hash().len(), 16);
    }

    #[test]
    fn framework_runtimes_install_their_framework_only_on_official_images() {
        let tmp = tempfile::tempdir().unwrap();
        for (runtime, install) in [("flask", "pip install"), ("express", "npm install")] {
            let yml = format!("name: f-{runtime}\nruntime: {runtime}\n");
            let f = funko_in(tmp.path(), &format!("f-{runtime}"), &yml, &[]);
            let local = BuildContext::assemble(&f, BaseChoice::Local).unwrap();
            let official = BuildContext::assemble(&f, BaseChoice::Official).unwrap();
            assert!(local.dockerfile().contains("FROM faaso-base/"), "{runtime}");
            // The local image was made with the framework, and its build has no network.
            assert!(
                !local.dockerfile().contains(install),
                "{}",
                local.dockerfile()
            );
            assert!(official.dockerfile().contains(install), "{runtime}");
        }
    }

    #[test]
    fn funko_files_override_runtime_files_and_options_reach_the_template() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tmp.path().join("rt");
        std::fs::create_dir_all(&rt).unwrap();
        std::fs::write(
            rt.join("runtime.yml"),
            "description: test\noptions: {greeting: hi, port: 1}\n",
        )
        .unwrap();
        std::fs::write(
            rt.join("Dockerfile.hbs"),
            "FROM scratch\n# {{name}} {{options.greeting}} {{options.port}} <&>\n{{#if (exists \"extra.txt\")}}COPY extra.txt /\n{{/if}}",
        )
        .unwrap();
        std::fs::write(rt.join("glue.txt"), "runtime").unwrap();
        let f = funko_in(
            tmp.path(),
            "f",
            "name: f\nruntime: ../rt\noptions: {greeting: hello}\n",
            &[("glue.txt", "funko"), ("extra.txt", "1")],
        );
        let ctx = BuildContext::assemble(&f, BaseChoice::Local).unwrap();
        assert_eq!(ctx.files["glue.txt"].bytes, b"funko");
        assert_eq!(
            ctx.dockerfile(),
            "FROM scratch\n# f hello 1 <&>\nCOPY extra.txt /\n"
        );
    }

    #[test]
    fn an_unknown_template_variable_is_located() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tmp.path().join("rt");
        std::fs::create_dir_all(&rt).unwrap();
        std::fs::write(rt.join("runtime.yml"), "description: test\n").unwrap();
        std::fs::write(
            rt.join("Dockerfile.hbs"),
            "FROM scratch\nRUN {{options.nope}}\n",
        )
        .unwrap();
        let f = funko_in(tmp.path(), "f", "name: f\nruntime: ../rt\n", &[]);
        let p = BuildContext::assemble(&f, BaseChoice::Local).unwrap_err();
        assert!(p.file.ends_with("Dockerfile.hbs"), "{p}");
        assert_eq!(p.line, Some(2), "{p}");
        assert!(p.message.contains("options.nope"), "{p}");
    }

    #[test]
    fn missing_runtime_and_missing_dockerfile_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let f = funko_in(tmp.path(), "f", "name: f\nruntime: pyhton\n", &[]);
        let p = BuildContext::assemble(&f, BaseChoice::Local).unwrap_err();
        assert!(p.message.contains("did you mean `python`?"), "{p}");
        assert_eq!(p.field.as_deref(), Some("runtime"));
        assert_eq!((p.line, p.column), (Some(2), Some(10)));
        let g = funko_in(tmp.path(), "g", "name: g\n", &[]);
        let p = BuildContext::assemble(&g, BaseChoice::Local).unwrap_err();
        assert!(p.message.contains("no Dockerfile"), "{p}");
    }

    #[test]
    fn export_writes_what_the_tar_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let f = funko_in(
            tmp.path(),
            "f",
            "name: f\nruntime: python\n",
            &[("handler.py", "x")],
        );
        let ctx = BuildContext::assemble(&f, BaseChoice::Local).unwrap();
        let out = tmp.path().join("out");
        ctx.export(&out).unwrap();
        assert!(out.join("Dockerfile").is_file());
        assert_eq!(std::fs::read(out.join("handler.py")).unwrap(), b"x");
        let mut archive = tar::Archive::new(std::io::Cursor::new(ctx.to_tar().unwrap()));
        assert_eq!(archive.entries().unwrap().count(), ctx.files.len());
        assert_eq!(ctx.to_tar().unwrap(), ctx.to_tar().unwrap());
    }

    #[test]
    fn every_runtime_carries_the_probe_and_an_own_dockerfile_gets_it_too() {
        let tmp = tempfile::tempdir().unwrap();
        for runtime in Runtime::builtin_names() {
            let yml = format!("name: f-{runtime}\nruntime: {runtime}\n");
            let f = funko_in(tmp.path(), &format!("f-{runtime}"), &yml, &[]);
            let ctx = BuildContext::assemble(&f, BaseChoice::Local).unwrap();
            assert_eq!(ctx.files[PROBE_FILE].mode, 0o755, "{runtime}");
            assert_eq!(ctx.files[PROBE_FILE].bytes, PROBE, "{runtime}");
            assert_eq!(
                crate::probed(ctx.dockerfile()),
                crate::Probed::ByProbe,
                "{runtime}: {}",
                ctx.dockerfile()
            );
        }
        let own = funko_in(
            tmp.path(),
            "own",
            "name: own\n",
            &[("Dockerfile", "FROM x\n")],
        );
        let ctx = BuildContext::assemble(&own, BaseChoice::Local).unwrap();
        assert_eq!(ctx.files[PROBE_FILE].mode, 0o755);
        let mut archive = tar::Archive::new(std::io::Cursor::new(ctx.to_tar().unwrap()));
        let probe = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().to_str() == Some(PROBE_FILE))
            .unwrap();
        assert_eq!(probe.header().mode().unwrap(), 0o755);
    }

    /// The YAML after `name: f\nruntime: binary\n`, and the field, line and words of its error.
    #[test]
    fn an_option_the_runtime_does_not_take_is_refused_with_its_field_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let cases: &[(&str, &str, u64, &[&str])] = &[
            (
                "options: {executable: \"app /funko/app\"}\n",
                "options.executable",
                3,
                &["does not match", "a string matching"],
            ),
            (
                "options:\n  executable: '--from=evil'\n",
                "options.executable",
                4,
                &["does not match"],
            ),
            (
                "options:\n  executable: 3\n",
                "options.executable",
                4,
                &["is not a string"],
            ),
            (
                "options:\n  entrypoint: x\n",
                "options.entrypoint",
                4,
                &["has no option `entrypoint`", "it takes: executable"],
            ),
        ];
        for (n, (body, field, line, words)) in cases.iter().enumerate() {
            let name = format!("f{n}");
            let f = funko_in(
                tmp.path(),
                &name,
                &format!("name: {name}\nruntime: binary\n{body}"),
                &[],
            );
            let p = BuildContext::assemble(&f, BaseChoice::Local).unwrap_err();
            assert!(p.file.ends_with("funko.yml"), "{body}: {p}");
            assert_eq!(p.field.as_deref(), Some(*field), "{body}: {p}");
            assert_eq!(p.line, Some(*line), "{body}: {p}");
            for word in *words {
                assert!(p.message.contains(word), "{body}: {p}");
            }
        }
    }

    #[test]
    fn declared_options_are_typed_and_bounded_and_render_as_one_token() {
        let tmp = tempfile::tempdir().unwrap();
        let f = funko_in(
            tmp.path(),
            "w",
            "name: w\nruntime: flask\noptions: {workers: 65}\n",
            &[],
        );
        let p = BuildContext::assemble(&f, BaseChoice::Local).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("options.workers"), "{p}");
        assert!(p.message.contains("from 1 to 64"), "{p}");
        let f = funko_in(
            tmp.path(),
            "a",
            "name: a\nruntime: flask\noptions: {app: 'web:create_app', threads: 8}\n",
            &[],
        );
        let ctx = BuildContext::assemble(&f, BaseChoice::Local).unwrap();
        assert!(ctx.dockerfile().contains("FAASO_APP=web:create_app\n"));
        assert!(
            ctx.dockerfile()
                .contains(r#""--workers", "2", "--threads", "8","#),
            "{}",
            ctx.dockerfile()
        );
        let f = funko_in(
            tmp.path(),
            "b",
            "name: b\nruntime: flask\noptions: {app: 'app:app\" ; rm -rf /'}\n",
            &[],
        );
        assert!(BuildContext::assemble(&f, BaseChoice::Local).is_err());
    }

    #[test]
    fn every_builtin_runtime_declares_each_option_its_template_reads() {
        let tmp = tempfile::tempdir().unwrap();
        for runtime in Runtime::builtin_names() {
            let rt = Runtime::builtin(&runtime).unwrap();
            for (key, decl) in &rt.meta.options {
                assert!(!decl.description.is_empty(), "{runtime}.{key}");
                assert!(
                    decl.kind != crate::runtime::OptionKind::String || decl.pattern.is_some(),
                    "{runtime}.{key}"
                );
            }
            let yml = format!("name: d-{runtime}\nruntime: {runtime}\n");
            let f = funko_in(tmp.path(), &format!("d-{runtime}"), &yml, &[]);
            BuildContext::assemble(&f, BaseChoice::Local).unwrap();
        }
    }

    #[test]
    fn a_runtime_in_the_plain_form_still_loads_and_its_strings_pass_a_safe_pattern() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tmp.path().join("rt");
        std::fs::create_dir_all(&rt).unwrap();
        std::fs::write(
            rt.join("runtime.yml"),
            "description: test\noptions: {main: src/app.cr, jobs: 2, debug: false}\n",
        )
        .unwrap();
        std::fs::write(
            rt.join("Dockerfile.hbs"),
            "FROM scratch\nRUN build {{options.main}} -j{{options.jobs}} {{options.debug}}\n",
        )
        .unwrap();
        let ok = funko_in(
            tmp.path(),
            "ok",
            "name: ok\nruntime: ../rt\noptions: {main: lib/main.cr, jobs: 4, debug: true}\n",
            &[],
        );
        let ctx = BuildContext::assemble(&ok, BaseChoice::Local).unwrap();
        assert!(
            ctx.dockerfile()
                .contains("RUN build lib/main.cr -j4 true\n")
        );
        for (n, bad) in [
            "{main: 'a b'}",
            "{main: 'x && curl evil'}",
            "{main: '$(id)'}",
            "{main: '-x'}",
            "{jobs: two}",
            "{debug: 1}",
            "{other: 1}",
        ]
        .iter()
        .enumerate()
        {
            let name = format!("bad{n}");
            let f = funko_in(
                tmp.path(),
                &name,
                &format!("name: {name}\nruntime: ../rt\noptions: {bad}\n"),
                &[],
            );
            let p = BuildContext::assemble(&f, BaseChoice::Local).unwrap_err();
            assert!(
                p.field
                    .as_deref()
                    .is_some_and(|f| f.starts_with("options.")),
                "{bad}: {p}"
            );
        }
    }

    #[test]
    fn a_runtime_whose_default_breaks_its_own_pattern_does_not_load() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tmp.path().join("rt");
        std::fs::create_dir_all(&rt).unwrap();
        std::fs::write(rt.join("Dockerfile.hbs"), "FROM scratch\n").unwrap();
        for meta in [
            "options: {x: {default: 'a b', pattern: '^[a-z]+$'}}",
            "options: {x: {default: 'a', pattern: '('}}",
            "options: {x: {default: 1, pattern: '^1$'}}",
            "options: {x: {default: 5, maximum: 4}}",
            "options: {x: 'a\\nb'}",
        ] {
            std::fs::write(rt.join("runtime.yml"), format!("description: t\n{meta}\n")).unwrap();
            assert!(Runtime::from_folder(&rt).is_err(), "{meta}");
        }
    }
}

//! `faaso build`: funko images through the Docker API, tagged by content hash; with a server
//! configured, built there (nothing rolls out) unless `--local`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use faaso_reconciler::{BuildOutcome, DockerEngine};
use faaso_schema::{BaseChoice, BuildContext, Funko};

use super::{BaseImages, Global, load_paths};
use crate::report::{self, Progress};

/// Arguments of `faaso build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Funko folders, or folders of funkos.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Builds every funko at `paths` whose image tag is missing; exit 1 if any funko is invalid or
/// fails to build (the others are still built).
pub async fn run(global: &Global, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let (funkos, problems) = load_paths(&args.paths);
    report::problems(&problems);
    if funkos.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    if let Some(remote) = crate::remote::select(global)? {
        let built = on_server(&remote, &funkos).await;
        return Ok(if built && problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let namespace = global.namespace();
    let engine = DockerEngine::connect(namespace.clone()).await?;
    let images = engine.image_tags().await?;
    let mut failed = !problems.is_empty();
    for funko in &funkos {
        let progress = Progress::start(funko.spec.name.as_str());
        match build_one(&engine, global, &namespace, &images, funko, &progress).await {
            Ok(line) => progress.finish(&line),
            Err(error) => {
                progress.finish(&format!("failed: {error:#}"));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Sends each funko to the server to be built there (nothing rolls out); whether all built.
async fn on_server(remote: &crate::remote::Remote, funkos: &[Funko]) -> bool {
    let mut all = true;
    for funko in funkos {
        let name = funko.spec.name.as_str();
        let outcome = async {
            // The checks a build makes, here first, as `faaso deploy` does.
            BuildContext::assemble(funko, BaseChoice::Local).map_err(|p| anyhow::anyhow!("{p}"))?;
            let (archive, files) = super::deploy::pack(&funko.dir)?;
            eprintln!("{name}: building on {} ({files} files)", remote.server());
            remote.build(name, archive).await
        }
        .await;
        match outcome {
            Ok(built) if built.built => {
                println!("{name}: built {} in {:.1}s", built.image, built.seconds)
            }
            Ok(built) => println!("{name}: {} is up to date", built.image),
            Err(error) => {
                eprintln!("error: {name}: {error:#}");
                all = false;
            }
        }
    }
    all
}

async fn build_one(
    engine: &DockerEngine,
    global: &Global,
    namespace: &faaso_reconciler::Namespace,
    images: &BTreeMap<String, u64>,
    funko: &Funko,
    progress: &Progress,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let policy = global.base_policy();
    let context = BuildContext::assemble_with(funko, |runtime| policy.choose(runtime, images))?;
    let image = namespace.image_ref(&funko.spec.name, &context.content_hash());
    let outcome = engine
        .build_image(&context, &image, |line| progress.line(line))
        .await
        .with_context(|| format!("funko `{}` ({})", funko.spec.name, funko.dir.display()))?;
    Ok(match outcome {
        BuildOutcome::Reused => format!("{image} is up to date"),
        BuildOutcome::Built => format!("built {image} in {:.1?}", started.elapsed()),
    })
}

/// The base choice when no engine is asked (export): `auto` means local, the offline default.
pub fn base_choice_offline(setting: BaseImages) -> BaseChoice {
    match setting {
        BaseImages::Official => BaseChoice::Official,
        BaseImages::Auto | BaseImages::Local => BaseChoice::Local,
    }
}

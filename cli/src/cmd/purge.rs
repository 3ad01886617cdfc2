//! `faaso purge <funko>`: its instances and images go; its folder stays, with scale 0, so a later
//! `faaso up` builds and starts it again.

use std::process::ExitCode;

use super::Global;
use super::scale::NameArgs;

/// Scales the funko to 0, waits until its instances are gone, then removes its images: on the
/// server, or on the local engine.
pub async fn run(global: &Global, args: NameArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let removed = match crate::remote::select(global)? {
        Some(remote) => {
            let scaled = super::scale::on_server(&remote, name, Some(0)).await?;
            if scaled != ExitCode::SUCCESS {
                return Ok(scaled);
            }
            remote.remove_images(name).await?
        }
        None => {
            let scaled = super::scale::run(global, name, &args.funkos.dir, Some(0)).await?;
            if scaled != ExitCode::SUCCESS {
                return Ok(scaled);
            }
            let engine = faaso_reconciler::DockerEngine::connect(global.namespace()).await?;
            engine.remove_funko_images(name).await?
        }
    };
    for image in &removed {
        println!("{name}: removed image {image}");
    }
    println!(
        "{name}: purged ({} images removed); its folder stays, with scale 0",
        removed.len()
    );
    Ok(ExitCode::SUCCESS)
}

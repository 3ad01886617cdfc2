//! `faaso proxy up|down` and `faaso server up|down`: the proxy (or the whole server) as the
//! `<prefix>-proxy` container, the only container with a host port. Its image is made on the spot
//! from the running `faaso` executable (plus the shared libraries it loads), `FROM scratch`, so
//! no registry is needed.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use faaso_reconciler::{Containers, DockerEngine, Namespace};
use futures_util::StreamExt;

use super::{AccessLogTo, ProxyArgs};
use crate::cmd::Global;

/// Port the proxy listens on inside its container.
pub(crate) const INNER_PORT: u16 = 8888;
/// Port the server's admin listener listens on inside its container.
pub(crate) const INNER_ADMIN_PORT: u16 = 8889;
/// Port of the plain-HTTP redirect listener inside the container, when there is one.
const INNER_REDIRECT_PORT: u16 = 8080;
/// Where the engine's socket is mounted, for discovery.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// What the container runs: the `faaso` arguments after the global flags, and what it needs
/// beyond the Docker socket.
pub struct Launch {
    /// `proxy …` or `server …`.
    pub args: Vec<String>,
    /// Extra bind mounts (`host:container[:mode]`).
    pub binds: Vec<String>,
    /// Extra environment (`KEY=value`).
    pub env: Vec<String>,
    /// What `faaso proxy up` prints it as.
    pub what: &'static str,
    /// Whether the proxy speaks TLS (then it is probed and shown as https).
    pub tls: bool,
    /// The redirect listener's host address, published from [`INNER_REDIRECT_PORT`].
    pub redirect: Option<SocketAddr>,
    /// The admin listener's host address (`faaso server` only), published from
    /// [`INNER_ADMIN_PORT`].
    pub admin: Option<SocketAddr>,
    /// The capabilities it keeps (all others are dropped).
    pub caps: Vec<String>,
}

impl Launch {
    /// The proxy alone, discovering routes through Docker. An access-log file goes into the
    /// state folder, mounted at its own path.
    pub fn proxy(args: &ProxyArgs, state_dir: &Path) -> anyhow::Result<Self> {
        let mut command = Vec::new();
        let mut binds = Vec::new();
        if args.access_log == AccessLogTo::File {
            std::fs::create_dir_all(state_dir)
                .with_context(|| format!("creating {}", state_dir.display()))?;
            let state = std::fs::canonicalize(state_dir)?.display().to_string();
            command.extend(["--state-dir".to_owned(), state.clone()]);
            binds.push(format!("{state}:{state}"));
        }
        command.extend([
            "proxy".to_owned(),
            "--listen".to_owned(),
            format!("0.0.0.0:{INNER_PORT}"),
        ]);
        command.extend(args.passed_on());
        Ok(Self {
            args: command,
            binds,
            env: Vec::new(),
            what: "faaso proxy",
            tls: false,
            redirect: None,
            admin: None,
            caps: Vec::new(),
        })
    }

    /// Adds the TLS flags: the folders of the certificate, key and ACME CA are mounted read-only
    /// at their own paths, the state folder (ACME's account and certificate) read-write (whole folders, so a renewed file renamed in is seen; a file mount would keep
    /// the old one), redirects name `https_port` (the published port), and the redirect
    /// listener, if any, is published on its host address.
    pub fn with_tls(
        mut self,
        args: &ProxyArgs,
        state_dir: &Path,
        https_port: u16,
    ) -> anyhow::Result<Self> {
        let tls = &args.tls;
        if !tls.enabled() {
            return Ok(self);
        }
        let absolute = |file: &Path| {
            std::fs::canonicalize(file)
                .with_context(|| format!("cannot read the TLS file {}", file.display()))
        };
        let mut files = Vec::new();
        if let (Some(cert), Some(key)) = (&tls.tls_cert, &tls.tls_key) {
            let (cert, key) = (absolute(cert)?, absolute(key)?);
            self.args.extend([
                format!("--tls-cert={}", cert.display()),
                format!("--tls-key={}", key.display()),
            ]);
            files.extend([cert, key]);
        }
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        if !tls.acme_domains.is_empty() {
            // The account and certificate live in the state folder, mounted read-write.
            std::fs::create_dir_all(state_dir)
                .with_context(|| format!("creating {}", state_dir.display()))?;
            let state = std::fs::canonicalize(state_dir)?.display().to_string();
            let bind = format!("{state}:{state}");
            if !self.binds.contains(&bind) {
                self.binds.push(bind);
            }
            if !self.args.iter().any(|a| a == "--state-dir") {
                self.args.push(format!("--state-dir={state}"));
            }
            self.args.extend([
                format!("--acme-domain={}", tls.acme_domains.join(",")),
                format!("--acme-directory={}", tls.acme_directory),
                format!("--acme-renew-before={}", duration(tls.acme_renew_before)),
                format!("--acme-check-every={}", duration(tls.acme_check_every)),
            ]);
            if let Some(ca) = &tls.acme_ca_cert {
                let ca = absolute(ca)?;
                self.args.push(format!("--acme-ca-cert={}", ca.display()));
                files.push(ca);
            }
        }
        for file in &files {
            if let Some(dir) = file.parent() {
                let bind = format!("{0}:{0}:ro", dir.display());
                if !self.binds.contains(&bind) {
                    self.binds.push(bind);
                }
            }
        }
        self.args.extend([
            format!(
                "--tls-handshake-timeout={}",
                duration(tls.tls_handshake_timeout)
            ),
            format!("--https-port={}", tls.https_port.unwrap_or(https_port)),
        ]);
        if let Some(age) = tls.hsts {
            self.args.push(format!("--hsts={}", duration(age)));
        }
        if let Some(redirect) = tls.http_redirect {
            self.args
                .push(format!("--http-redirect=0.0.0.0:{INNER_REDIRECT_PORT}"));
            self.redirect = Some(redirect);
        }
        self.tls = true;
        Ok(self)
    }
}

/// Starts (or replaces) the proxy container, publishing `port` on `bind`.
pub async fn up(
    global: &Global,
    args: &ProxyArgs,
    bind: IpAddr,
    port: u16,
) -> anyhow::Result<ExitCode> {
    let launch = Launch::proxy(args, &global.state_dir)?.with_tls(args, &global.state_dir, port)?;
    up_with(
        &global.namespace(),
        &launch,
        args.shutdown_grace,
        bind,
        port,
    )
    .await
}

/// Starts (or replaces) the `<prefix>-proxy` container running `launch`.
pub async fn up_with(
    ns: &Namespace,
    launch: &Launch,
    grace: Duration,
    bind: IpAddr,
    port: u16,
) -> anyhow::Result<ExitCode> {
    let docker = connect().await?;
    DockerEngine::connect(ns.clone())
        .await?
        .ensure_network()
        .await
        .with_context(|| format!("creating the network {}", ns.network))?;
    let image = ensure_image(&docker, ns).await?;
    remove_existing(&docker, ns, Duration::from_secs(10)).await?;
    let name = format!("{}-proxy", ns.prefix);
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let created = docker
        .create_container(
            Some(options),
            container_config(ns, launch, grace, &image, bind, port),
        )
        .await
        .with_context(|| format!("creating the container {name}"))?;
    docker
        .start_container(&created.id, None)
        .await
        .with_context(|| format!("starting the container {name} (is port {port} free?)"))?;
    let probe_host = if bind.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        bind
    };
    if !healthy(probe_host, port, launch.tls).await {
        bail!(
            "the proxy container {name} started but {probe_host}:{port}/healthz never answered; see `docker logs {name}`"
        );
    }
    let scheme = if launch.tls { "https" } else { "http" };
    println!(
        "{} is up: {scheme}://{probe_host}:{port}/funko/<name>/ (container {name}, image {image})",
        launch.what
    );
    if let Some(admin) = launch.admin {
        let host = if admin.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            admin.ip()
        };
        let admin = SocketAddr::new(host, admin.port());
        println!("the admin API and web UI: {scheme}://{admin}/admin/");
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops (SIGTERM, then the grace period) and removes the proxy container.
pub async fn down(ns: &Namespace) -> anyhow::Result<ExitCode> {
    let docker = connect().await?;
    let removed = remove_existing(&docker, ns, Duration::from_secs(10)).await?;
    if removed == 0 {
        println!("faaso proxy was not running");
    } else {
        println!("faaso proxy is down");
    }
    Ok(ExitCode::SUCCESS)
}

/// A Docker client for faaso's own container (the reconciler's backend keeps its client to
/// itself).
async fn connect() -> anyhow::Result<Docker> {
    let docker = Docker::connect_with_defaults().context("connecting to the Docker engine")?;
    docker
        .negotiate_version()
        .await
        .context("connecting to the Docker engine")
}

/// The label that marks the proxy container, so it is found again by label, never by name.
/// The global flags that put a faaso in a container into the same namespace as this one.
pub(super) fn namespace_args(ns: &Namespace) -> Vec<String> {
    vec![
        "--network".to_owned(),
        ns.network.clone(),
        "--prefix".to_owned(),
        ns.prefix.clone(),
        "--labels".to_owned(),
        ns.labels.clone(),
    ]
}

fn role_label(ns: &Namespace) -> (String, String) {
    (ns.label("role"), "proxy".to_owned())
}

fn container_config(
    ns: &Namespace,
    launch: &Launch,
    grace: Duration,
    image: &str,
    bind: IpAddr,
    port: u16,
) -> ContainerCreateBody {
    let mut cmd = namespace_args(ns);
    cmd.extend(launch.args.iter().cloned());
    let mut binds = vec![format!("{DOCKER_SOCKET}:{DOCKER_SOCKET}")];
    binds.extend(launch.binds.iter().cloned());
    let port_key = format!("{INNER_PORT}/tcp");
    let mut published = HashMap::from([(
        port_key,
        Some(vec![PortBinding {
            host_ip: Some(bind.to_string()),
            host_port: Some(port.to_string()),
        }]),
    )]);
    if let Some(admin) = launch.admin {
        published.insert(
            format!("{INNER_ADMIN_PORT}/tcp"),
            Some(vec![PortBinding {
                host_ip: Some(admin.ip().to_string()),
                host_port: Some(admin.port().to_string()),
            }]),
        );
    }
    if let Some(redirect) = launch.redirect {
        published.insert(
            format!("{INNER_REDIRECT_PORT}/tcp"),
            Some(vec![PortBinding {
                host_ip: Some(redirect.ip().to_string()),
                host_port: Some(redirect.port().to_string()),
            }]),
        );
    }
    ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(cmd),
        labels: Some(HashMap::from([role_label(ns)])),
        // The engine only publishes ports the container exposes.
        exposed_ports: Some(published.keys().cloned().collect()),
        env: Some(launch.env.clone()),
        stop_timeout: Some(grace.as_secs() as i64 + 1),
        host_config: Some(HostConfig {
            network_mode: Some(ns.network.clone()),
            binds: Some(binds),
            port_bindings: Some(published),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            // The socket is nearly all it needs: no privilege gain, nothing written outside its
            // mounts and a tmpfs /tmp, and no capability but what `launch.caps` names.
            cap_drop: Some(vec!["ALL".to_owned()]),
            cap_add: (!launch.caps.is_empty()).then(|| launch.caps.clone()),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                "rw,noexec,nosuid,size=64m".to_owned(),
            )])),
            pids_limit: Some(1024),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Removes every container carrying the proxy label; returns how many there were.
async fn remove_existing(
    docker: &Docker,
    ns: &Namespace,
    grace: Duration,
) -> anyhow::Result<usize> {
    let (key, value) = role_label(ns);
    let filters = HashMap::from([("label", vec![format!("{key}={value}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker
        .list_containers(Some(options))
        .await
        .context("listing proxy containers")?;
    for container in &found {
        let Some(id) = container.id.as_deref() else {
            continue;
        };
        let stop = StopContainerOptionsBuilder::new()
            .t(grace.as_secs() as i32)
            .build();
        // Already stopped (304) or gone (404) is fine: removal follows either way.
        let _ = docker.stop_container(id, Some(stop)).await;
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        match docker.remove_container(id, Some(remove)).await {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(err) => {
                return Err(err).with_context(|| format!("removing the proxy container {id}"));
            }
        }
    }
    Ok(found.len())
}

/// The image `<prefix>-proxy:<hash of the executable>`, built when missing.
pub(super) async fn ensure_image(docker: &Docker, ns: &Namespace) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the faaso executable")?;
    let files = rootfs_files(&exe)?;
    let tag = format!("{}-proxy:{}", ns.prefix, content_hash(&files)?);
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let context = build_context(&exe, &files[1..]).context("packing the proxy image")?;
    let labels = HashMap::from([role_label(ns)]);
    let options = BuildImageOptionsBuilder::new()
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("building {tag}"))?;
        if let Some(detail) = info.error_detail {
            bail!(
                "building {tag} failed: {}",
                detail.message.unwrap_or_default()
            );
        }
    }
    docker
        .inspect_image(&tag)
        .await
        .with_context(|| format!("building {tag} left no image"))?;
    Ok(tag)
}

/// The executable and every shared library `ldd` says it loads (none for a static build).
fn rootfs_files(exe: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![exe.to_owned()];
    let output = std::process::Command::new("ldd").arg(exe).output();
    // No ldd, or "not a dynamic executable": the binary alone must do.
    if let Ok(output) = output
        && output.status.success()
    {
        files.extend(libraries(&String::from_utf8_lossy(&output.stdout)));
    }
    Ok(files)
}

/// The absolute library paths in `ldd` output.
fn libraries(ldd: &str) -> Vec<PathBuf> {
    ldd.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn content_hash(files: &[PathBuf]) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    }
    Ok(hex::encode(&hasher.finalize()[..6]))
}

/// A build context: `Dockerfile` (FROM scratch) and `rootfs/` holding the files at their paths.
fn build_context(exe: &Path, libraries: &[PathBuf]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/faaso\"]\n";
    append(&mut tar, "Dockerfile", 0o644, dockerfile.as_bytes())?;
    append(&mut tar, "rootfs/faaso", 0o755, &std::fs::read(exe)?)?;
    for lib in libraries {
        let inside = Path::new("rootfs").join(lib.strip_prefix("/")?);
        append(&mut tar, &inside, 0o755, &std::fs::read(lib)?)?;
    }
    // /tmp for anything that wants a scratch directory.
    let mut tmp = tar::Header::new_gnu();
    tmp.set_entry_type(tar::EntryType::Directory);
    tmp.set_mode(0o1777);
    tmp.set_size(0);
    tmp.set_cksum();
    tar.append_data(&mut tmp, "rootfs/tmp/", std::io::empty())?;
    let mut bytes = tar.into_inner()?;
    bytes.flush()?;
    Ok(bytes)
}

/// Adds a regular file from bytes: the engine's tar reader refuses the sparse entries that
/// appending a path can produce.
fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: impl AsRef<Path>,
    mode: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    tar.append_data(&mut header, path, data)
}

/// Whether `GET /healthz` answers within a few seconds.
pub(super) async fn healthy(host: IpAddr, port: u16, tls: bool) -> bool {
    if tls {
        return healthy_over_tls(host, port).await;
    }
    for _ in 0..50 {
        if let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = format!(
                "GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = Vec::new();
            if stream.write_all(request.as_bytes()).await.is_ok()
                && tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer))
                    .await
                    .is_ok()
                && answer.starts_with(b"HTTP/1.1 200")
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Whether `https://host:port/healthz` answers 200 within about 5 s. The certificate is not
/// checked: it names the public host, not the loopback address probed, and no secret is sent.
async fn healthy_over_tls(host: IpAddr, port: u16) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(client) = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return false;
    };
    let url = format!("https://{}/healthz", SocketAddr::new(host, port));
    for _ in 0..50 {
        if let Ok(answer) = client.get(&url).send().await
            && answer.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_paths() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            libraries(ldd),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}

//! The container a funko instance runs in: its name, labels and config, built by pure functions.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use faaso_schema::Spec;

use crate::desired::Prepared;
use crate::namespace::Namespace;
use crate::observe::FUNKO_PORT;

/// How long an instance gets between SIGTERM and SIGKILL.
pub(super) const STOP_GRACE_SECS: i64 = 10;

/// The container name of instance `number`: `<prefix>-<funko>-<number>-<config hash>`, so an old
/// and a new instance of the same number can coexist during a rollout.
pub(super) fn container_name(
    namespace: &Namespace,
    funko: &str,
    number: u32,
    config_hash: &str,
) -> String {
    format!(
        "{}-{funko}-{number}-{}",
        namespace.prefix,
        &config_hash[..config_hash.len().min(8)]
    )
}

/// The labels that let faaso find and understand the container later (Docker is the only
/// record), including what a proxy that discovers it needs: the request timeout and health path.
pub(super) fn labels(
    namespace: &Namespace,
    spec: &Spec,
    number: u32,
    config_hash: &str,
) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (namespace.label("managed"), "true".to_owned()),
        (namespace.label("funko"), spec.name.to_string()),
        (namespace.label("instance"), number.to_string()),
        (namespace.label("config-hash"), config_hash.to_owned()),
        (namespace.label("timeout"), spec.timeout.to_string()),
        (
            namespace.label("health-path"),
            spec.healthcheck.path.clone(),
        ),
    ]);
    // What the proxy applies to browsers, as JSON (absent: no CORS).
    if let Some(cors) = &spec.cors {
        labels.insert(
            namespace.label("cors"),
            serde_json::to_string(cors).unwrap_or_default(),
        );
    }
    labels
}

/// The create request for instance `number` of `prepared`.
pub(super) fn container_config(
    namespace: &Namespace,
    prepared: &Prepared,
    number: u32,
) -> ContainerCreateBody {
    let spec = &prepared.funko.spec;
    let hardening = &spec.hardening;
    let mut env = vec![format!("PORT={FUNKO_PORT}")];
    env.extend(spec.env.iter().map(|(k, v)| format!("{}={}", k.0, v.0)));
    let binds = prepared
        .secrets
        .iter()
        .map(|s| format!("{}:/secrets/{}:ro", s.host_path.display(), s.key))
        .collect();
    ContainerCreateBody {
        image: Some(prepared.image.clone()),
        env: Some(env),
        labels: Some(labels(namespace, spec, number, &prepared.config_hash)),
        stop_timeout: Some(STOP_GRACE_SECS),
        host_config: Some(HostConfig {
            network_mode: Some(namespace.network.clone()),
            binds: Some(binds),
            memory: spec
                .resources
                .memory
                .map(|m| i64::try_from(m.0).unwrap_or(i64::MAX)),
            nano_cpus: spec.resources.cpus.map(|c| c.nano_cpus()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            security_opt: hardening
                .no_new_privileges
                .then(|| vec!["no-new-privileges".to_owned()]),
            cap_drop: hardening.drop_capabilities.then(|| vec!["ALL".to_owned()]),
            pids_limit: Some(i64::from(hardening.pids_limit)),
            readonly_rootfs: Some(hardening.read_only),
            tmpfs: hardening.read_only.then(|| {
                HashMap::from([("/tmp".to_owned(), "rw,noexec,nosuid,size=64m".to_owned())])
            }),
            // Docker's init (tini) is PID 1: it passes SIGTERM on to the funko, whose process
            // then gets the default action (exit) without handling signals itself, and it
            // reaps zombies.
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Spec {
        faaso_schema::parse_spec(yaml).unwrap()
    }

    #[test]
    fn instances_are_hardened_unless_the_funko_relaxes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("funko.yml"), "name: a\nruntime: python\n").unwrap();
        let prepare = || {
            let funko = faaso_schema::load_funko(&dir).unwrap();
            let context =
                faaso_schema::BuildContext::assemble(&funko, faaso_schema::BaseChoice::Local)
                    .unwrap();
            Prepared {
                funko,
                context,
                image: "i".into(),
                secrets: vec![],
                config_hash: "c".into(),
            }
        };
        let host = container_config(&Namespace::default(), &prepare(), 1)
            .host_config
            .unwrap();
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.init, Some(true), "Docker's init passes SIGTERM on");
        assert!(host.tmpfs.unwrap().contains_key("/tmp"));
        assert!(
            host.binds
                .unwrap()
                .iter()
                .all(|b| !b.contains("docker.sock"))
        );
        std::fs::write(
            dir.join("funko.yml"),
            "name: a\nruntime: python\nhardening: {read_only: false}\n",
        )
        .unwrap();
        let relaxed = container_config(&Namespace::default(), &prepare(), 1)
            .host_config
            .unwrap();
        assert_eq!(relaxed.readonly_rootfs, Some(false));
        assert_eq!(
            relaxed.cap_drop,
            Some(vec!["ALL".to_owned()]),
            "only what was relaxed changes"
        );
    }

    #[test]
    fn names_and_labels_follow_the_namespace() {
        let ns = Namespace {
            network: "n".into(),
            prefix: "t1".into(),
            labels: "t1".into(),
        };
        assert_eq!(
            container_name(&ns, "hello", 2, "abcdef0123456"),
            "t1-hello-2-abcdef01"
        );
        let labels = labels(&ns, &spec("name: hello\ntimeout: 5s\n"), 2, "abc");
        assert_eq!(labels["t1.timeout"], "5s");
        assert_eq!(labels["t1.managed"], "true");
        assert_eq!(labels["t1.instance"], "2");
    }
}

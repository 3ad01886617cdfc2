//! A funko's Swarm service, built by pure functions from its prepared spec: what faaso's
//! conventions become in a `ServiceSpec`, and what Swarm cannot express refused, never dropped.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, HealthConfig, Limit, Mount, MountTmpfsOptions, MountType,
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecPrivileges,
    TaskSpecContainerSpecSecrets, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use faaso_schema::{PROBE_PATH, Probed, Spec, probe_copy_line, probed};

use crate::desired::Prepared;
use crate::namespace::Namespace;
use crate::observe::FUNKO_PORT;

/// The grace period between SIGTERM and SIGKILL, as on one host.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The uid every runtime runs as, which owns the secret files.
const FUNKO_UID: &str = "10001";

/// How the engine can forbid a task gaining privileges (`no-new-privileges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoNewPrivileges {
    /// The service API has the setting (API 1.44 and later).
    PerService,
    /// Every container of some engines has it (`dockerd --no-new-privileges`); they say so
    /// with the engine label [`NO_NEW_PRIVILEGES_LABEL`], and tasks are placed only there.
    ByDaemon,
    /// Neither: a funko that asks for it is refused.
    Unavailable,
}

/// The engine label (`dockerd --label`) by which a node says its daemon runs every container
/// with no-new-privileges: Docker's info does not tell, and the manager sees engine labels.
pub const NO_NEW_PRIVILEGES_LABEL: &str = "faaso.no-new-privileges";

/// A secret a service mounts: its key (the file `/secrets/<key>`) and the Swarm secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The key.
    pub key: String,
    /// The Swarm secret's id.
    pub id: String,
    /// The Swarm secret's (versioned) name.
    pub name: String,
}

/// The service name of a funko: `<prefix>-<name>`, as a container is named on one host.
pub fn service_name(ns: &Namespace, funko: &str) -> String {
    format!("{}-{funko}", ns.prefix)
}

/// The versioned name of a secret value: a new value is a new secret, so a rolling update can
/// swap them (a secret in use cannot be changed or deleted).
pub fn secret_name(ns: &Namespace, funko: &str, key: &str, version: &str) -> String {
    let id = crate::desired::short_hash(format!("{key}\0{version}").as_bytes());
    format!("{}-{funko}-{id}", ns.prefix)
}

/// Why a funko cannot run on this Swarm as its spec says; `None` when it can.
pub fn refusal(prepared: &Prepared, no_new_privileges: NoNewPrivileges) -> Option<String> {
    let spec = &prepared.funko.spec;
    if let Some(auto) = spec.scale.auto() {
        return Some(format!(
            "funko `{}` is autoscaled (scale: {{min: {}, max: {}}}), which needs `faaso server` \
             on one Docker engine (it pauses, wakes and counts instances itself); on Swarm write \
             a fixed `scale: <n>` in its funko.yml",
            spec.name, auto.min, auto.max
        ));
    }
    if spec.hardening.no_new_privileges && no_new_privileges == NoNewPrivileges::Unavailable {
        return Some(format!(
            "funko `{}` asks for hardening.no_new_privileges, which this Swarm cannot set per \
             service (its API is older than 1.44) and no node's daemon enforces (start the \
             nodes' dockerd with --no-new-privileges and --label {NO_NEW_PRIVILEGES_LABEL}=true, \
             or set `hardening: {{no_new_privileges: false}}` in its funko.yml)",
            spec.name
        ));
    }
    if probed(prepared.context.dockerfile()) == Probed::Not {
        // Without a healthcheck a start-first rollout cannot wait for the new task to be ready.
        let dockerfile = match &spec.runtime {
            None => prepared.funko.dir.join("Dockerfile").display().to_string(),
            Some(runtime) => format!("the Dockerfile.hbs of runtime `{runtime}`"),
        };
        return Some(format!(
            "funko `{}` cannot be probed for readiness on Swarm: {dockerfile} neither copies \
             faaso's probe nor has a HEALTHCHECK; add the line `{}` (faaso puts the probe in \
             every build context), or a HEALTHCHECK of its own",
            spec.name,
            probe_copy_line()
        ));
    }
    None
}

/// The healthcheck Swarm's start-first rollout waits for: faaso's probe on the funko's
/// `healthcheck:` path, with its timing. `None` when the image has its own HEALTHCHECK instead.
fn health_config(prepared: &Prepared) -> Option<HealthConfig> {
    if probed(prepared.context.dockerfile()) != Probed::ByProbe {
        return None;
    }
    let health = &prepared.funko.spec.healthcheck;
    let url = format!("http://127.0.0.1:{FUNKO_PORT}{}", health.path);
    let timeout_ms = health.timeout.0.as_millis().to_string();
    Some(HealthConfig {
        test: Some(vec![
            "CMD".to_owned(),
            PROBE_PATH.to_owned(),
            url,
            timeout_ms,
        ]),
        interval: Some(nanos(health.interval.0)),
        timeout: Some(nanos(health.timeout.0)),
        retries: Some(i64::from(health.retries)),
        start_period: Some(nanos(health.start_period.0)),
        ..Default::default()
    })
}

/// The labels of a funko's service (what the planner reads back).
pub fn service_labels(ns: &Namespace, funko: &str, config_hash: &str) -> HashMap<String, String> {
    HashMap::from([
        (ns.label("managed"), "true".to_owned()),
        (ns.label("funko"), funko.to_owned()),
        (ns.label("config-hash"), config_hash.to_owned()),
    ])
}

/// The labels of its containers: the service's, and what a proxy reads of an instance.
fn container_labels(ns: &Namespace, spec: &Spec, config_hash: &str) -> HashMap<String, String> {
    let mut labels = service_labels(ns, spec.name.as_str(), config_hash);
    labels.insert(ns.label("timeout"), spec.timeout.to_string());
    labels.insert(ns.label("health-path"), spec.healthcheck.path.clone());
    if let Some(cors) = &spec.cors {
        labels.insert(
            ns.label("cors"),
            serde_json::to_string(cors).unwrap_or_default(),
        );
    }
    labels
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The service spec of `prepared`, running `image` (pinned by digest) with `secrets`.
pub fn service_spec(
    ns: &Namespace,
    prepared: &Prepared,
    image: &str,
    secrets: &[SecretRef],
    replicas: u32,
    no_new_privileges: NoNewPrivileges,
) -> Result<ServiceSpec, String> {
    let spec = &prepared.funko.spec;
    if let Some(reason) = refusal(prepared, no_new_privileges) {
        return Err(reason);
    }
    let name = spec.name.as_str();
    let hardening = &spec.hardening;
    let mut env = vec![format!("PORT={FUNKO_PORT}")];
    env.extend(spec.env.iter().map(|(k, v)| format!("{}={}", k.0, v.0)));
    let mounts = hardening.read_only.then(|| {
        vec![Mount {
            target: Some("/tmp".to_owned()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(64 << 20),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let secrets = secrets
        .iter()
        .map(|s| TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(format!("/secrets/{}", s.key)),
                uid: Some(FUNKO_UID.to_owned()),
                gid: Some(FUNKO_UID.to_owned()),
                mode: Some(0o400),
            }),
            secret_id: Some(s.id.clone()),
            secret_name: Some(s.name.clone()),
        })
        .collect();
    let container = TaskSpecContainerSpec {
        image: Some(image.to_owned()),
        labels: Some(container_labels(ns, spec, &prepared.config_hash)),
        env: Some(env),
        read_only: Some(hardening.read_only),
        mounts,
        secrets: Some(secrets),
        stop_grace_period: Some(nanos(STOP_GRACE)),
        health_check: health_config(prepared),
        init: Some(true),
        capability_drop: hardening.drop_capabilities.then(|| vec!["ALL".to_owned()]),
        privileges: (hardening.no_new_privileges
            && no_new_privileges == NoNewPrivileges::PerService)
            .then(|| TaskSpecContainerSpecPrivileges {
                no_new_privileges: Some(true),
                ..Default::default()
            }),
        ..Default::default()
    };
    Ok(ServiceSpec {
        name: Some(service_name(ns, name)),
        labels: Some(service_labels(ns, name, &prepared.config_hash)),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: spec.resources.cpus.map(|c| c.nano_cpus()),
                    memory_bytes: spec
                        .resources
                        .memory
                        .map(|m| i64::try_from(m.0).unwrap_or(i64::MAX)),
                    pids: Some(i64::from(hardening.pids_limit)),
                }),
                ..Default::default()
            }),
            placement: (hardening.no_new_privileges
                && no_new_privileges == NoNewPrivileges::ByDaemon)
                .then(|| TaskSpecPlacement {
                    constraints: Some(vec![format!(
                        "engine.labels.{NO_NEW_PRIVILEGES_LABEL} == true"
                    )]),
                    ..Default::default()
                }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(nanos(Duration::from_secs(1))),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(ns.network.clone()),
                aliases: Some(vec![name.to_owned()]),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(replicas)),
            }),
            ..Default::default()
        }),
        // Start the new task, wait for its healthcheck, then stop an old one; a new version
        // that fails goes back to the previous one by itself.
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(nanos(Duration::from_secs(5))),
            ..Default::default()
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            ..Default::default()
        }),
        // No IPVS needed: each task's address is in DNS (`tasks.<service>`) once healthy.
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(yaml: &str) -> Prepared {
        prepared_with(yaml, None)
    }

    /// A funko with its own Dockerfile when `dockerfile` is given.
    fn prepared_with(yaml: &str, dockerfile: Option<&str>) -> Prepared {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("funko.yml"), yaml).unwrap();
        if let Some(text) = dockerfile {
            std::fs::write(dir.join("Dockerfile"), text).unwrap();
        }
        let funko = faaso_schema::load_funko(&dir).unwrap();
        let context =
            faaso_schema::BuildContext::assemble(&funko, faaso_schema::BaseChoice::Local).unwrap();
        Prepared {
            funko,
            context,
            image: "faaso-a:1".into(),
            secrets: vec![],
            config_hash: "c0ffee".into(),
        }
    }

    fn container(spec: &ServiceSpec) -> &TaskSpecContainerSpec {
        spec.task_template
            .as_ref()
            .unwrap()
            .container_spec
            .as_ref()
            .unwrap()
    }

    #[test]
    fn a_default_funko_is_hardened_probed_and_rolled_start_first() {
        let p = prepared("name: a\nruntime: python\nenv: {A: b}\n");
        let secret = SecretRef {
            key: "k".into(),
            id: "sid".into(),
            name: "faaso-a-x".into(),
        };
        let spec = service_spec(
            &Namespace::default(),
            &p,
            "reg/faaso-a:1@sha256:00",
            &[secret],
            3,
            NoNewPrivileges::ByDaemon,
        )
        .unwrap();
        assert_eq!(spec.name.as_deref(), Some("faaso-a"));
        let c = container(&spec);
        assert_eq!(c.image.as_deref(), Some("reg/faaso-a:1@sha256:00"));
        assert_eq!(c.read_only, Some(true));
        assert_eq!(c.capability_drop, Some(vec!["ALL".to_owned()]));
        assert!(c.env.as_ref().unwrap().contains(&"A=b".to_owned()));
        let health = c.health_check.as_ref().unwrap();
        assert_eq!(
            health.test.as_deref().unwrap(),
            ["CMD", "/faaso/probe", "http://127.0.0.1:3000/ping", "2000"]
        );
        assert_eq!(
            health.interval,
            Some(nanos(p.funko.spec.healthcheck.interval.0))
        );
        let file = c.secrets.as_ref().unwrap()[0].file.as_ref().unwrap();
        assert_eq!(file.name.as_deref(), Some("/secrets/k"));
        assert_eq!(
            spec.update_config.unwrap().order,
            Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST)
        );
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(3));
        assert_eq!(
            spec.endpoint_spec.unwrap().mode,
            Some(EndpointSpecModeEnum::DNSRR)
        );
    }

    #[test]
    fn no_new_privileges_is_refused_where_swarm_cannot_set_it() {
        let p = prepared("name: a\nruntime: python\n");
        let err = service_spec(
            &Namespace::default(),
            &p,
            "i",
            &[],
            1,
            NoNewPrivileges::Unavailable,
        )
        .unwrap_err();
        assert!(err.contains("no_new_privileges"), "{err}");
        let relaxed = prepared("name: a\nruntime: python\nhardening: {no_new_privileges: false}\n");
        assert!(
            service_spec(
                &Namespace::default(),
                &relaxed,
                "i",
                &[],
                1,
                NoNewPrivileges::Unavailable
            )
            .is_ok()
        );
    }

    #[test]
    fn a_new_secret_value_is_a_new_secret_name() {
        let ns = Namespace::default();
        assert_ne!(
            secret_name(&ns, "a", "k", "v1"),
            secret_name(&ns, "a", "k", "v2")
        );
        assert!(secret_name(&ns, &"x".repeat(40), "k", "v").len() <= 64);
    }

    #[test]
    fn every_runtime_is_probed_on_its_healthcheck_path_and_timing() {
        for runtime in faaso_schema::Runtime::builtin_names() {
            let p = prepared(&format!(
                "name: a\nruntime: {runtime}\nhealthcheck: {{path: /healthz, timeout: 750ms, retries: 7}}\n"
            ));
            let spec = service_spec(
                &Namespace::default(),
                &p,
                "i",
                &[],
                1,
                NoNewPrivileges::PerService,
            )
            .unwrap();
            let health = container(&spec).health_check.clone().unwrap();
            assert_eq!(
                health.test.unwrap(),
                [
                    "CMD",
                    "/faaso/probe",
                    "http://127.0.0.1:3000/healthz",
                    "750"
                ],
                "{runtime}"
            );
            assert_eq!(health.timeout, Some(nanos(Duration::from_millis(750))));
            assert_eq!(health.retries, Some(7));
        }
    }

    #[test]
    fn an_own_dockerfile_is_told_how_to_carry_the_probe() {
        let ns = Namespace::default();
        let bare = prepared_with("name: a\n", Some("FROM faaso-base/python:bookworm\n"));
        let err = service_spec(&ns, &bare, "i", &[], 1, NoNewPrivileges::PerService).unwrap_err();
        assert!(err.contains("`COPY faaso-probe /faaso/probe`"), "{err}");
        assert!(err.contains("Dockerfile"), "{err}");
        let copying = prepared_with(
            "name: a\n",
            Some("FROM faaso-base/python:bookworm\nCOPY faaso-probe /faaso/probe\n"),
        );
        let spec = service_spec(&ns, &copying, "i", &[], 1, NoNewPrivileges::PerService).unwrap();
        assert_eq!(
            container(&spec)
                .health_check
                .as_ref()
                .unwrap()
                .test
                .as_ref()
                .unwrap()[1],
            "/faaso/probe"
        );
        // Its own HEALTHCHECK is kept: a service healthcheck would replace it.
        let own = prepared_with(
            "name: a\n",
            Some("FROM x\nHEALTHCHECK CMD [\"/app/check\"]\n"),
        );
        let spec = service_spec(&ns, &own, "i", &[], 1, NoNewPrivileges::PerService).unwrap();
        assert_eq!(container(&spec).health_check, None);
    }
}

//! Where each funko stands: its desired scale against its current instances that answer
//! their healthcheck now (probed), the outdated ones, and why it is not converged.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::desired::DesiredState;
use crate::failures::Failures;
use crate::in_flight::InFlight;
use crate::observe::{Instance, InstanceState, Observed};
use crate::probe::probe;
use crate::report::{Bounds, FunkoStatus};

/// The status of every funko in `state` or `observed` that `in_scope` keeps.
pub(crate) async fn statuses(
    state: &DesiredState,
    observed: &Observed,
    failures: &Failures,
    in_flight: &InFlight,
    engine_vouches: bool,
    in_scope: impl Fn(&str) -> bool,
) -> Vec<FunkoStatus> {
    let mut names: BTreeSet<String> = state.desired.funkos.keys().cloned().collect();
    names.extend(state.problems.keys().cloned());
    names.extend(
        observed
            .instances
            .iter()
            .filter(|i| i.managed)
            .map(|i| i.funko.clone()),
    );
    names.retain(|name| in_scope(name));
    // Every current instance of every funko is probed at once: one slow instance costs its
    // timeout once, not once per funko before it.
    let mut statuses = Vec::new();
    let mut probes = Vec::new();
    for name in names {
        let desired = state.desired.funkos.get(&name);
        let live: Vec<_> = observed
            .instances
            .iter()
            .filter(|i| i.managed && i.funko == name && i.state == InstanceState::Running)
            .collect();
        let current_hash = desired.map(|d| d.config_hash.as_str());
        let health = state.prepared.get(&name).map(|p| &p.funko.spec.healthcheck);
        let index = statuses.len();
        for &instance in live
            .iter()
            .filter(|i| Some(i.config_hash.as_str()) == current_hash)
        {
            if let Some(health) = health {
                probes.push(async move {
                    let ready = engine_vouches || instance_ready(instance, health).await;
                    (index, ready)
                });
            }
        }
        let outdated = live
            .iter()
            .filter(|i| Some(i.config_hash.as_str()) != current_hash)
            .count() as u32;
        let idle = |state: InstanceState| {
            observed
                .instances
                .iter()
                .filter(|i| {
                    i.managed
                        && i.funko == name
                        && i.state == state
                        && Some(i.config_hash.as_str()) == current_hash
                })
                .count() as u32
        };
        let autoscaled = desired.and_then(|d| d.autoscaled.as_ref());
        let (paused, stopped) = match autoscaled {
            Some(_) => (idle(InstanceState::Paused), idle(InstanceState::Exited)),
            None => (0, 0),
        };
        let error = state
            .problems
            .get(&name)
            .map(|p| p.to_string())
            .or_else(|| failures.get(&name).map(|f| f.error.clone()))
            .or_else(|| {
                desired
                    .is_none()
                    .then(|| "its funko folder is gone".to_owned())
            });
        statuses.push(FunkoStatus {
            converging: in_flight.get(&name),
            name,
            desired: desired.map(|d| d.scale),
            ready: 0,
            outdated,
            paused,
            stopped,
            autoscaled: autoscaled.map(|a| Bounds {
                min: a.min,
                max: a.max,
                target: a.target,
            }),
            last_decision: None,
            image: desired.map(|d| d.image.clone()),
            image_created: desired.and_then(|d| observed.images.get(&d.image).copied()),
            error,
            config_hash: desired.map(|d| d.config_hash.clone()),
        });
    }
    for (index, ready) in futures_util::future::join_all(probes).await {
        statuses[index].ready += u32::from(ready);
    }
    statuses
}

/// Whether a running instance answers its healthcheck now.
async fn instance_ready(instance: &Instance, health: &faaso_schema::Healthcheck) -> bool {
    let Some(addr) = instance.addr() else {
        return false;
    };
    probe(
        addr,
        &health.path,
        health.timeout.0.min(Duration::from_secs(2)),
    )
    .await
}

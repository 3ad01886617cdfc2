//! `Twin`: an in-memory engine of numbered containers that implements the [`Backend`] and
//! [`Containers`] boundary for real, with scripted faults and an injectable clock, so unit and
//! property tests drive `Reconciler<Twin>` passes through the same planner and executor as
//! Docker. It is never the only test of a behaviour: the Docker backend is tested against a
//! real engine.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use faaso_schema::Healthcheck;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use crate::backend::{
    Backend, Change, EngineError, InstanceDetails, InstanceLog, LogOptions, Started, StepFailure,
};
use crate::desired::{Desired, Prepared};
use crate::execute::{Containers, execute, prepare};
use crate::listener::Listener;
use crate::observe::{Instance, InstanceState, Observed};
use crate::plan::{Step, plan};
use crate::prune::{BuiltImage, images_to_remove};

/// What the twin was asked to do, in order (tests add what their listener hears).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An image was built.
    Built(String),
    /// An instance was created and started.
    Started {
        /// Its funko.
        funko: String,
        /// Its id.
        id: String,
    },
    /// An instance answered its healthcheck.
    Ready(String),
    /// The listener was told an instance may get traffic (recorded by a test's listener).
    Routed(String),
    /// The listener was told an instance is leaving (recorded by a test's listener).
    Leaving(String),
    /// An instance was stopped and removed.
    Removed(String),
    /// An image was removed by pruning.
    Pruned(String),
    /// An instance was restarted in place.
    Restarted(String),
    /// An idle instance was paused.
    Paused(String),
    /// An idle instance was stopped and kept.
    Stopped(String),
    /// A paused or stopped instance was woken.
    Resumed(String),
}

/// A fault the twin plays when asked, for every funko it names until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Its image build fails.
    Build,
    /// Its instances start but never answer their healthcheck.
    NeverReady,
    /// Creating its instances fails.
    Start,
    /// Waking its paused or stopped instances fails.
    Resume,
    /// Its image build never ends (a `RUN` that hangs).
    HangBuild,
    /// Its new instances start but their readiness wait never ends (a model loading for an
    /// hour).
    HangReady,
    /// Creating its instances panics (a bug in faaso, say).
    Panic,
}

/// The twin's engine state.
#[derive(Debug, Default)]
struct State {
    instances: Vec<Instance>,
    /// Images by reference: the funko, and when built (the clock's seconds).
    images: BTreeMap<String, (String, u64)>,
    faults: BTreeSet<(String, Fault)>,
    journal: Vec<Event>,
    now: u64,
    next_id: u64,
}

/// An in-memory engine; clones share it.
#[derive(Debug, Clone)]
pub struct Twin {
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Change>,
}

impl Default for Twin {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            changes: broadcast::channel(64).0,
        }
    }
}

impl Twin {
    /// A twin already holding `observed`'s instances and images (images built at time 0).
    pub fn new(observed: Observed) -> Self {
        let twin = Self::default();
        {
            let mut state = twin.state();
            state.instances = observed.instances;
            state.images = observed
                .images
                .into_keys()
                .map(|image| {
                    let funko = image_funko(&image);
                    (image, (funko, 0))
                })
                .collect();
        }
        twin
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plays `fault` for `funko` until [`Twin::clear_faults`].
    pub fn fail(&self, funko: &str, fault: Fault) {
        self.state().faults.insert((funko.to_owned(), fault));
    }

    /// Stops playing every fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Moves the twin's clock on (it dates images, so pruning sees an order).
    pub fn advance(&self, by: Duration) {
        self.state().now += by.as_secs();
    }

    /// The instance stops as if it crashed, and the change stream says so.
    pub fn kill(&self, id: &str) {
        for instance in self.state().instances.iter_mut().filter(|i| i.id == id) {
            instance.state = InstanceState::Stopped;
        }
        let _ = self.changes.send(Change::Died(id.to_owned()));
    }

    /// Sets an instance's state and records `event`.
    fn park(&self, id: &str, to: InstanceState, event: Event) -> Result<(), EngineError> {
        let mut state = self.state();
        let Some(instance) = state.instances.iter_mut().find(|i| i.id == id) else {
            return Err(scripted(format!("there is no instance `{id}`")));
        };
        instance.state = to;
        state.journal.push(event);
        Ok(())
    }

    fn instance_funko(&self, id: &str) -> String {
        self.state()
            .instances
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.funko.clone())
            .unwrap_or_default()
    }

    /// Its instances now.
    pub fn instances(&self) -> Vec<Instance> {
        self.state().instances.clone()
    }

    /// Its image references now.
    pub fn images(&self) -> BTreeSet<String> {
        self.state().images.keys().cloned().collect()
    }

    /// Adds an event to the journal (a test's listener records what it hears here, so one
    /// journal holds the engine's and the listener's order).
    pub fn record(&self, event: Event) {
        self.state().journal.push(event);
    }

    /// Everything done so far, in order.
    pub fn journal(&self) -> Vec<Event> {
        self.state().journal.clone()
    }

    fn faulty(&self, funko: &str, fault: Fault) -> bool {
        self.state().faults.contains(&(funko.to_owned(), fault))
    }
}

/// The funko of a `<prefix>-<funko>:<tag>` reference.
fn image_funko(image: &str) -> String {
    let repository = image.split(':').next().unwrap_or_default();
    repository
        .split_once('-')
        .map_or(repository, |(_, funko)| funko)
        .to_owned()
}

/// A scripted fault, as an engine error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Scripted(String);

fn scripted(message: String) -> EngineError {
    EngineError::new(Scripted(message))
}

impl Containers for Twin {
    async fn ensure_network(&self) -> Result<(), EngineError> {
        Ok(())
    }

    async fn build(
        &self,
        prepared: &Prepared,
        output: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), EngineError> {
        let funko = prepared.funko.spec.name.to_string();
        if self.faulty(&funko, Fault::HangBuild) {
            std::future::pending::<()>().await;
        }
        if self.faulty(&funko, Fault::Build) {
            output("Step 1/1 : RUN false");
            return Err(scripted(format!(
                "building image `{}` failed: scripted",
                prepared.image
            )));
        }
        let mut state = self.state();
        let now = state.now;
        state.images.insert(prepared.image.clone(), (funko, now));
        state.journal.push(Event::Built(prepared.image.clone()));
        Ok(())
    }

    async fn start(&self, prepared: &Prepared, number: u32) -> Result<Started, EngineError> {
        let spec = &prepared.funko.spec;
        let funko = spec.name.to_string();
        assert!(
            !self.faulty(&funko, Fault::Panic),
            "scripted panic starting `{funko}`"
        );
        if self.faulty(&funko, Fault::Start) {
            return Err(scripted(format!("cannot create an instance of `{funko}`")));
        }
        let mut state = self.state();
        assert!(
            state.images.contains_key(&prepared.image),
            "started {funko} before its image was built"
        );
        state.next_id += 1;
        let id = format!("twin-{}", state.next_id);
        let name = format!("faaso-{funko}-{number}-{}", state.next_id);
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + state.next_id as u32);
        state.instances.push(Instance {
            id: id.clone(),
            name: name.clone(),
            managed: true,
            funko: funko.clone(),
            number,
            config_hash: prepared.config_hash.clone(),
            image: prepared.image.clone(),
            state: InstanceState::Running,
            ip: Some(ip.into()),
            timeout: Some(spec.timeout.0),
            health_path: spec.healthcheck.path.clone(),
            cors: spec.cors.clone(),
        });
        state.journal.push(Event::Started {
            funko,
            id: id.clone(),
        });
        Ok(Started {
            id,
            name,
            addr: std::net::SocketAddr::new(ip.into(), crate::observe::FUNKO_PORT),
            request_timeout: spec.timeout.0,
            cors: spec.cors.clone(),
        })
    }

    async fn wait_ready(
        &self,
        started: &Started,
        _healthcheck: &Healthcheck,
    ) -> Result<(), EngineError> {
        let funko = self.instance_funko(&started.id);
        if self.faulty(&funko, Fault::HangReady) {
            std::future::pending::<()>().await;
        }
        if self.faulty(&funko, Fault::NeverReady) {
            return Err(scripted(format!(
                "instance `{}` never became ready: scripted",
                started.name
            )));
        }
        self.record(Event::Ready(started.id.clone()));
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        self.park(id, InstanceState::Paused, Event::Paused(id.to_owned()))
    }

    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        self.park(id, InstanceState::Exited, Event::Stopped(id.to_owned()))
    }

    async fn resume(&self, id: &str, _paused: bool) -> Result<SocketAddr, EngineError> {
        let funko = self.instance_funko(id);
        if self.faulty(&funko, Fault::Resume) {
            return Err(scripted(format!(
                "instance `{id}` could not be woken: scripted"
            )));
        }
        self.park(id, InstanceState::Running, Event::Resumed(id.to_owned()))?;
        Ok(SocketAddr::new(
            std::net::Ipv4Addr::LOCALHOST.into(),
            crate::observe::FUNKO_PORT,
        ))
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let mut state = self.state();
        let before = state.instances.len();
        state.instances.retain(|i| i.id != id);
        if state.instances.len() < before {
            state.journal.push(Event::Removed(id.to_owned()));
        }
        Ok(())
    }

    async fn remove_stopped(&self, id: &str) -> Result<bool, EngineError> {
        let runs = self
            .state()
            .instances
            .iter()
            .any(|i| i.id == id && i.state.is_live());
        if !runs {
            Containers::remove(self, id).await?;
        }
        Ok(!runs)
    }
}

impl Backend for Twin {
    type Step = Step;

    async fn observe(&self) -> Result<Observed, EngineError> {
        let state = self.state();
        Ok(Observed {
            instances: state.instances.clone(),
            images: state
                .images
                .iter()
                .map(|(image, (_, created))| (image.clone(), *created))
                .collect(),
        })
    }

    fn plan(&self, desired: &Desired, observed: &Observed) -> Vec<Step> {
        plan(desired, observed)
    }

    async fn prepare(&self, steps: &[Step]) -> Result<(), EngineError> {
        prepare(self, steps).await
    }

    async fn execute(
        &self,
        step: &Step,
        prepared: Option<&Prepared>,
        listener: &dyn Listener<Step>,
    ) -> Result<(), StepFailure> {
        execute(self, step, prepared, listener).await
    }

    async fn prune_images(&self, keep: &BTreeSet<String>) -> Result<usize, EngineError> {
        let mut state = self.state();
        let built: Vec<BuiltImage> = state
            .images
            .iter()
            .map(|(image, (funko, created))| BuiltImage {
                id: image.clone(),
                tags: vec![image.clone()],
                funko: funko.clone(),
                created: *created as i64,
            })
            .collect();
        let gone = images_to_remove(&built, keep);
        for image in &gone {
            state.images.remove(image);
            state.journal.push(Event::Pruned(image.clone()));
        }
        Ok(gone.len())
    }

    fn changes(&self) -> BoxStream<'static, Result<Change, EngineError>> {
        BroadcastStream::new(self.changes.subscribe())
            .filter_map(|change| async move { change.ok().map(Ok) })
            .boxed()
    }

    async fn inspect(&self, funko: &str) -> Result<Vec<InstanceDetails>, EngineError> {
        let state = self.state();
        Ok(state
            .instances
            .iter()
            .filter(|i| i.managed && i.funko == funko)
            .map(|i| InstanceDetails {
                status: format!("{:?}", i.state).to_lowercase(),
                started_at: (i.state == InstanceState::Running).then_some(state.now),
                health: None,
                instance: i.clone(),
            })
            .collect())
    }

    async fn restart(&self, id: &str) -> Result<(), EngineError> {
        self.park(id, InstanceState::Running, Event::Restarted(id.to_owned()))
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        Containers::pause(self, id).await
    }

    async fn wait_ready(
        &self,
        started: &Started,
        healthcheck: &Healthcheck,
    ) -> Result<(), EngineError> {
        Containers::wait_ready(self, started, healthcheck).await
    }

    async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        Containers::resume(self, id, true).await.map(|_| ())
    }

    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        Containers::stop(self, id).await
    }

    async fn resume(&self, id: &str, paused: bool) -> Result<SocketAddr, EngineError> {
        Containers::resume(self, id, paused).await
    }

    async fn logs(&self, funko: &str, _: LogOptions) -> Result<Vec<InstanceLog>, EngineError> {
        let instances = self.instances();
        Ok(instances
            .into_iter()
            .filter(|i| i.managed && i.funko == funko)
            .map(|i| InstanceLog {
                output: futures_util::stream::iter([Ok(format!("{} started\n", i.name).into())])
                    .boxed(),
                instance: i.name,
            })
            .collect())
    }
}

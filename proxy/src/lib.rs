//! faaso's HTTP proxy: routes `/funko/<name>/<rest>?<q>` to `/<rest>?<q>` on a ready instance.
//!
//! The proxy knows HTTP and a [`RouteTable`], not how the table is filled. A feeder either hands
//! candidate instances to a [`HealthChecker`], which probes them and puts them into [`Routes`]
//! once they answer 2xx, or (server mode) inserts instances it already knows are ready straight
//! into [`Routes`]. [`Proxy`] serves the table.
#![forbid(unsafe_code)]

mod access_log;
mod acme;
mod answer;
mod body;
mod client;
mod config;
mod cors;
mod deadline;
mod error;
mod forward;
mod health;
mod hold;
mod hop;
mod metrics;
mod pool;
mod prefix;
mod redirect;
mod request_id;
mod route_table;
mod scale_metrics;
mod server;
mod shard;
mod shutdown;
mod tls;
mod upgrade;

pub use access_log::{AccessLogDestination, AccessLogFormat};
pub use acme::{AcmeError, AcmeSettings};
pub use config::ProxyConfig;
pub use cors::Cors;
pub use error::ProxyError;
pub use health::{Candidate, HealthChecker, ProbeConfig};
pub use metrics::FunkoCounts;
pub use route_table::{FunkoRoute, FunkoSettings, Instance, InstanceId, RouteTable, Routes};
pub use server::Proxy;
pub use tls::{TlsError, TlsSettings, load_pair};

//! `Namespace`: the names faaso gives to what it creates, so several environments (and parallel
//! tests) can share one Docker engine without touching each other.

use faaso_schema::FunkoName;

/// The network, container/image name prefix and label namespace of one faaso environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The bridge network instances join.
    pub network: String,
    /// Container and image names start with `<prefix>-`.
    pub prefix: String,
    /// Label keys are `<labels>.managed`, `<labels>.funko`, …
    pub labels: String,
}

impl Default for Namespace {
    fn default() -> Self {
        Self {
            network: "faaso-net".to_owned(),
            prefix: "faaso".to_owned(),
            labels: "faaso".to_owned(),
        }
    }
}

impl Namespace {
    /// The label key `<labels>.<key>`.
    pub fn label(&self, key: &str) -> String {
        format!("{}.{key}", self.labels)
    }

    /// The image repository of a funko: `<prefix>-<name>`.
    pub fn image_repository(&self, funko: &FunkoName) -> String {
        format!("{}-{funko}", self.prefix)
    }

    /// The image reference built from a context with `content_hash`.
    pub fn image_ref(&self, funko: &FunkoName, content_hash: &str) -> String {
        format!("{}:{content_hash}", self.image_repository(funko))
    }

    /// The name of faaso's own proxy (or server) container: on the network and named like a
    /// funko, but none.
    pub fn proxy_container(&self) -> String {
        format!("{}-proxy", self.prefix)
    }

    /// The label filter matching everything this namespace manages.
    pub fn managed_filter(&self) -> String {
        format!("{}=true", self.label("managed"))
    }
}

//! Old versions in the registry. Every deploy pushes a new tag and nothing else ever deletes
//! one, so after a deploy faaso keeps the digests the funko's service runs and would roll back
//! to (its spec and its previous spec) and deletes the repository's other manifests; a removed
//! funko keeps none. Deleting needs the registry's `storage.delete.enabled`; the layers the
//! manifests held go at the registry's own garbage collection (`registry garbage-collect`).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Client, StatusCode, header};

/// Manifest kinds a registry may hold for a pushed image; the digest read back is the one the
/// registry stores, whichever it is.
const MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
                         application/vnd.docker.distribution.manifest.list.v2+json, \
                         application/vnd.oci.image.manifest.v1+json, \
                         application/vnd.oci.image.index.v1+json";

/// The registry at `host:port`, spoken to as Docker does: HTTPS, or plain HTTP when it does not
/// speak TLS (a registry the nodes list under `insecure-registries`).
pub(super) struct Registry {
    client: Client,
    host: String,
}

impl Registry {
    pub(super) fn new(host: &str) -> Result<Self, String> {
        let client = Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot make an HTTP client for the registry: {e}"))?;
        Ok(Self {
            client,
            host: host.to_owned(),
        })
    }

    /// Deletes every manifest of `repo` whose digest is not in `keep`; returns how many went.
    pub(super) async fn prune(&self, repo: &str, keep: &BTreeSet<String>) -> Result<usize, String> {
        let base = self.base().await?;
        let tags = self.tags(&base, repo).await?;
        let mut doomed = BTreeSet::new();
        for tag in tags {
            if let Some(digest) = self.digest(&base, repo, &tag).await?
                && !keep.contains(&digest)
            {
                doomed.insert(digest);
            }
        }
        for digest in &doomed {
            let url = format!("{base}/v2/{repo}/manifests/{digest}");
            let response = self.send(self.client.delete(&url)).await?;
            match response.status() {
                s if s.is_success() || s == StatusCode::NOT_FOUND => {}
                StatusCode::METHOD_NOT_ALLOWED => {
                    return Err(format!(
                        "the registry {} does not allow deleting (set storage.delete.enabled)",
                        self.host
                    ));
                }
                s => {
                    return Err(format!(
                        "deleting {repo}@{digest}: the registry answered {s}"
                    ));
                }
            }
        }
        Ok(doomed.len())
    }

    /// `https://host` when the registry speaks TLS, else `http://host`.
    async fn base(&self) -> Result<String, String> {
        let https = format!("https://{}", self.host);
        match self.client.get(format!("{https}/v2/")).send().await {
            Ok(_) => Ok(https),
            Err(e) if e.is_connect() || e.is_request() => Ok(format!("http://{}", self.host)),
            Err(e) => Err(format!("cannot reach the registry {}: {e}", self.host)),
        }
    }

    /// The repository's tags; none when the registry does not know it.
    async fn tags(&self, base: &str, repo: &str) -> Result<Vec<String>, String> {
        #[derive(serde::Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let response = self
            .send(self.client.get(format!("{base}/v2/{repo}/tags/list")))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let response = checked(response, "listing the tags")?;
        let tags: Tags = response
            .json()
            .await
            .map_err(|e| format!("the registry's tag list of {repo}: {e}"))?;
        Ok(tags.tags.unwrap_or_default())
    }

    /// The digest `repo:tag` stands for, if the tag is still there.
    async fn digest(&self, base: &str, repo: &str, tag: &str) -> Result<Option<String>, String> {
        let request = self
            .client
            .head(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header(header::ACCEPT, MANIFESTS);
        let response = self.send(request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = checked(response, "reading a manifest")?;
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("the registry gave {repo}:{tag} no digest"))?;
        Ok(Some(digest.to_owned()))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        request
            .send()
            .await
            .map_err(|e| format!("cannot reach the registry {}: {e}", self.host))
    }
}

/// The response, or what the registry said when it refused (401: faaso sends no credentials).
fn checked(response: reqwest::Response, what: &str) -> Result<reqwest::Response, String> {
    match response.status() {
        s if s.is_success() => Ok(response),
        StatusCode::UNAUTHORIZED => Err(format!(
            "{what}: the registry asks for credentials, which faaso does not send"
        )),
        s => Err(format!("{what}: the registry answered {s}")),
    }
}

/// The digest of an image reference pinned by digest (`repo:tag@sha256:…`).
pub(super) fn pinned_digest(image: &str) -> Option<&str> {
    image.rsplit_once('@').map(|(_, digest)| digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_reference_reads_as_its_digest() {
        let image = "10.77.0.1:5000/faaso-hello:abc123@sha256:0f0f";
        assert_eq!(pinned_digest(image), Some("sha256:0f0f"));
        assert_eq!(pinned_digest("faaso-hello:abc"), None);
    }
}

//! Bundles as OCI artifacts: `omk bundle push|pull` through any OCI
//! registry, with the maintained `oci-client` crate.
//!
//! A bundle travels as one image manifest with:
//! - a config blob of media type [`CONFIG_MEDIA_TYPE`]: the bundle's name,
//!   version, WIT version and gates (what a registry UI can show);
//! - one layer of media type [`LAYER_MEDIA_TYPE`]: the bundle's
//!   deterministic `.tar.gz`, signatures inside — so they travel with it.
//!
//! This follows the CNCF wasm OCI artifact layout (a config describing the
//! content, layers holding it) with omk's own media types, since a bundle
//! is several components. `oci-client` checks every blob against its
//! digest on pull; the bundle is then verified like any other before use.
//! References look like `oci://HOST[:PORT]/REPO:TAG` or `…@sha256:…`;
//! loopback registries are spoken to over plain HTTP, others over HTTPS
//! unless `plain_http` is set.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{Bundle, BundleError, read_tar_gz};

/// The config blob's media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.omk.bundle.config.v1+json";
/// The bundle layer's media type.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.omk.bundle.v1.tar+gzip";

/// A parsed `oci://` reference.
#[derive(Debug, Clone)]
pub struct OciRef {
    pub reference: Reference,
    pub plain_http: bool,
}

/// Parses `oci://HOST/REPO:TAG` (or `@sha256:…`).
pub fn parse(s: &str, plain_http: bool) -> Result<OciRef, String> {
    let rest = s
        .strip_prefix("oci://")
        .ok_or_else(|| format!("`{s}` is not an OCI reference: write `oci://HOST/REPO:TAG`"))?;
    let reference: Reference = rest
        .parse()
        .map_err(|e| format!("`{s}` is not an OCI reference: {e}"))?;
    let host = reference
        .registry()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let loopback = host == "localhost" || host == "127.0.0.1" || host == "[::1]";
    Ok(OciRef {
        reference,
        plain_http: plain_http || loopback,
    })
}

fn client(r: &OciRef) -> Client {
    // reqwest's rustls needs a crypto provider; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: if r.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    })
}

/// The login for `registry`, found the way container tools find it:
/// `OMK_REGISTRY_USER` and `OMK_REGISTRY_PASSWORD`; else the Docker config
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: its `auths`,
/// `credsStore` or `credHelpers`); else Podman's `auth.json`; else none.
fn auth(registry: &str) -> Result<RegistryAuth, String> {
    if let (Ok(u), Ok(p)) = (
        std::env::var("OMK_REGISTRY_USER"),
        std::env::var("OMK_REGISTRY_PASSWORD"),
    ) {
        return Ok(RegistryAuth::Basic(u, p));
    }
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    type Lookup = fn(&str) -> Result<DockerCredential, E>;
    let lookups: [Lookup; 2] = [
        docker_credential::get_credential,
        docker_credential::get_podman_credential,
    ];
    let mut servers = vec![registry.to_owned(), format!("https://{registry}")];
    if matches!(registry, "docker.io" | "index.docker.io") {
        // Docker Hub's key in `docker login`'s config.
        servers.push("https://index.docker.io/v1/".into());
    }
    for lookup in lookups {
        for server in &servers {
            match lookup(server) {
                Ok(DockerCredential::UsernamePassword(u, p)) => {
                    return Ok(RegistryAuth::Basic(u, p));
                }
                Ok(DockerCredential::IdentityToken(t)) => return Ok(RegistryAuth::Bearer(t)),
                // No file (the crate cannot tell a missing file from an
                // unreadable one), or nothing for this registry in it.
                Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => {}
                Err(e) => {
                    return Err(format!(
                        "cannot read the login for `{registry}`: {}",
                        e.to_string().trim()
                    ));
                }
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

/// An error and every cause under it, once each: "error sending request"
/// alone does not say that the connection was refused.
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// Pushes `bundle`; returns the manifest's digest reference.
pub async fn push(bundle: &Bundle, to: &OciRef) -> Result<String, BundleError> {
    let err = |m: String| {
        BundleError::new(
            &bundle.origin,
            m,
            Some(
                "check the registry address and that it is running; a registry that needs a login reads it from `docker login` or OMK_REGISTRY_USER/OMK_REGISTRY_PASSWORD",
            ),
        )
    };
    let config = serde_json::json!({
        "name": bundle.manifest.name,
        "version": bundle.manifest.version,
        "wit": bundle.manifest.wit,
        "gates": bundle.manifest.gates.iter().map(|g| &g.name).collect::<Vec<_>>(),
    });
    let config = Config {
        data: serde_json::to_vec(&config).unwrap_or_default().into(),
        media_type: CONFIG_MEDIA_TYPE.into(),
        annotations: None,
    };
    let layer = ImageLayer {
        data: bundle.to_tar_gz().into(),
        media_type: LAYER_MEDIA_TYPE.into(),
        annotations: None,
    };
    let layers = [layer];
    let manifest = OciImageManifest::build(&layers, &config, None);
    let c = client(to);
    let login = auth(to.reference.registry()).map_err(err)?;
    c.push(&to.reference, &layers, config, &login, Some(manifest))
        .await
        .map_err(|e| err(format!("cannot push to `{}`: {}", to.reference, causes(&e))))?;
    let digest = c
        .fetch_manifest_digest(&to.reference, &login)
        .await
        .map_err(|e| {
            err(format!(
                "pushed, but cannot read back the digest: {}",
                causes(&e)
            ))
        })?;
    Ok(format!(
        "oci://{}/{}@{digest}",
        to.reference.registry(),
        to.reference.repository()
    ))
}

/// Pulls the bundle at `from` (not yet verified).
pub async fn pull(from: &OciRef) -> Result<Bundle, BundleError> {
    let origin = format!("oci://{}", from.reference);
    let err = |m: String| {
        BundleError::new(
            &origin,
            m,
            Some(
                "check the reference and that the registry is running; a registry that needs a login reads it from `docker login` or OMK_REGISTRY_USER/OMK_REGISTRY_PASSWORD",
            ),
        )
    };
    let login = auth(from.reference.registry()).map_err(err)?;
    let image = client(from)
        .pull(&from.reference, &login, vec![LAYER_MEDIA_TYPE])
        .await
        .map_err(|e| err(format!("cannot pull: {}", causes(&e))))?;
    let [layer] = image.layers.as_slice() else {
        return Err(err(format!(
            "holds {} layers; an omk bundle has one",
            image.layers.len()
        )));
    };
    let entries =
        read_tar_gz(&layer.data).map_err(|e| err(format!("its layer is not a bundle: {e}")))?;
    Bundle::from_entries(&origin, entries)
}

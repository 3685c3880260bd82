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

/// Credentials from `OMK_REGISTRY_USER` / `OMK_REGISTRY_PASSWORD`, else
/// anonymous.
fn auth() -> RegistryAuth {
    match (
        std::env::var("OMK_REGISTRY_USER"),
        std::env::var("OMK_REGISTRY_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => RegistryAuth::Basic(u, p),
        _ => RegistryAuth::Anonymous,
    }
}

/// Pushes `bundle`; returns the manifest's digest reference.
pub async fn push(bundle: &Bundle, to: &OciRef) -> Result<String, BundleError> {
    let err = |m: String| {
        BundleError::new(
            &bundle.origin,
            m,
            Some("check the registry address and that it is running"),
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
    c.push(&to.reference, &layers, config, &auth(), Some(manifest))
        .await
        .map_err(|e| err(format!("cannot push to `{}`: {e}", to.reference)))?;
    let digest = c
        .fetch_manifest_digest(&to.reference, &auth())
        .await
        .map_err(|e| err(format!("pushed, but cannot read back the digest: {e}")))?;
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
            Some("check the reference and that the registry is running"),
        )
    };
    let image = client(from)
        .pull(&from.reference, &auth(), vec![LAYER_MEDIA_TYPE])
        .await
        .map_err(|e| err(format!("cannot pull: {e}")))?;
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

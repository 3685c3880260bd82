//! The record of the bundles installed in a project
//! (`.omk/bundles/installed.json`): what is there now, and the highest
//! version of each ever installed, so that an old release — signed, and so
//! verifying — cannot quietly replace a newer one, even after the newer
//! one's folder was removed.
//!
//! ```json
//! {"bundles": {"team": {"version": "2.0.0", "digest": "…", "highest": "2.0.0"}}}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::BundleError;

/// The record's file name, in the project's bundles folder.
pub const INSTALLED_FILE: &str = "installed.json";

/// One installed bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledBundle {
    /// The version installed now.
    pub version: String,
    /// Its digest (the sha256 of its signed statement).
    pub digest: String,
    /// The highest version ever installed.
    pub highest: String,
}

/// Every installed bundle, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    pub bundles: BTreeMap<String, InstalledBundle>,
}

impl Installed {
    /// The record in the bundles folder `dir` (empty when there is none).
    pub fn read(dir: &Path) -> Result<Installed, BundleError> {
        let path = dir.join(INSTALLED_FILE);
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Installed::default()),
            Err(e) => Err(BundleError::new(
                &path.display().to_string(),
                format!("cannot read it: {e}"),
                None,
            )),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BundleError::new(
                    &path.display().to_string(),
                    format!("is damaged: {e}"),
                    Some("it records the bundles installed here; restore it from version control"),
                )
                .integrity()
            }),
        }
    }

    /// Writes the record into the bundles folder `dir`, atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        crate::atomic::write_json(&dir.join(INSTALLED_FILE), self)
    }

    /// Whether bundle `name` at `version` may be installed: never below
    /// the highest version installed before, unless `allow_downgrade`.
    pub fn check(
        &self,
        name: &str,
        version: &str,
        allow_downgrade: bool,
    ) -> Result<(), BundleError> {
        let Some(prior) = self.bundles.get(name) else {
            return Ok(());
        };
        if allow_downgrade {
            return Ok(());
        }
        let parse = |v: &str| semver::Version::parse(v.trim()).ok();
        match (parse(version), parse(&prior.highest)) {
            (Some(new), Some(high)) if new >= high => Ok(()),
            (Some(_), Some(_)) => Err(BundleError::new(
                name,
                format!(
                    "version {version} is older than {}, installed here before (now {}): a rollback",
                    prior.highest, prior.version
                ),
                Some(
                    "install a release at least as new, or pass `--allow-downgrade` if the rollback is meant",
                ),
            )
            .integrity()),
            _ if version == prior.highest => Ok(()),
            _ => Err(BundleError::new(
                name,
                format!(
                    "version `{version}` cannot be ordered against `{}`, installed here before",
                    prior.highest
                ),
                Some(
                    "bundle versions are semantic versions; pass `--allow-downgrade` to replace it anyway",
                ),
            )),
        }
    }

    /// Whether the bundle `name` found at load, at `version` with `digest`,
    /// is the one `omk bundle install` put there (when it put one there):
    /// an older release copied into place by hand is a rollback too.
    pub fn check_loaded(&self, name: &str, version: &str, digest: &str) -> Result<(), BundleError> {
        match self.bundles.get(name) {
            Some(r) if r.digest != digest => Err(BundleError::new(
                name,
                format!(
                    "holds version {version}, not the {} that `omk bundle install` put there{}",
                    r.version,
                    if self.check(name, version, false).is_err() {
                        " (a rollback)"
                    } else {
                        ""
                    }
                ),
                Some(
                    "install the bundle with `omk bundle install` (with `--allow-downgrade` for an older release) instead of copying it into place",
                ),
            )
            .integrity()),
            _ => Ok(()),
        }
    }

    /// Records bundle `name` at `version` with `digest` as installed.
    pub fn record(&mut self, name: &str, version: &str, digest: &str) {
        let newer = |a: &str, b: &str| match (
            semver::Version::parse(a.trim()),
            semver::Version::parse(b.trim()),
        ) {
            (Ok(a), Ok(b)) => a > b,
            _ => false,
        };
        let highest = match self.bundles.get(name) {
            Some(p) if !newer(version, &p.highest) => p.highest.clone(),
            _ => version.to_owned(),
        };
        self.bundles.insert(
            name.to_owned(),
            InstalledBundle {
                version: version.to_owned(),
                digest: digest.to_owned(),
                highest,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollbacks_are_refused_unless_asked() {
        let mut r = Installed::default();
        assert!(r.check("team", "1.0.0", false).is_ok());
        r.record("team", "2.0.0", "d2");
        assert!(r.check("team", "2.0.0", false).is_ok());
        assert!(r.check("team", "2.1.0", false).is_ok());
        let e = r.check("team", "1.0.0", false).unwrap_err();
        assert!(e.message.contains("rollback"), "{e}");
        assert!(r.check("team", "1.0.0", true).is_ok());
        // A forced rollback keeps the highest version seen.
        r.record("team", "1.0.0", "d1");
        assert_eq!(r.bundles["team"].highest, "2.0.0");
        assert!(r.check("team", "1.5.0", false).is_err());
        assert!(r.check("team", "weird", false).is_err());
    }
}

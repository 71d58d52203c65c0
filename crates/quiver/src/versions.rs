//! A view's versions: each with its schema, the apply that made it, whether it is served and
//! what the online store holds of it (`quiver versions VIEW`).

use quiver_core::FeatureView;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::registry::{ApplyRecord, ChangeAction, Registry};
use crate::store::FeatureStore;

/// The apply that recorded a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppliedBy {
    pub serial: u64,
    pub at: String,
    pub definitions_hash: Option<String>,
    pub user: Option<String>,
    pub host: Option<String>,
}

/// One version of a view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewVersion {
    pub version: u32,
    /// The schema fingerprint (join keys, field names and types in order).
    pub fingerprint: String,
    /// Its latest definition; `None` for a version applied before definitions were kept.
    pub definition: Option<FeatureView>,
    /// The apply that first recorded this version, if the history still says.
    pub created_by: Option<AppliedBy>,
    /// The registry's active version.
    pub served: bool,
    /// Feature services that pin this version (`view@vN:feature`): it is served to them, and
    /// `prune-online` keeps it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pinned_by: Vec<String>,
    /// Online records of this version and their estimated bytes (0 and 0: none).
    pub online_keys: u64,
    pub online_bytes: u64,
}

/// Every version a view has had, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionsReport {
    pub view: String,
    /// The served version; `None` when the view was removed.
    pub active: Option<u32>,
    pub versions: Vec<ViewVersion>,
    /// Set when the online store could not be counted (the counts are then 0).
    pub online_error: Option<String>,
}

/// Whether `record` introduced `version` of `view` (added as it, or changed to it).
fn introduced(record: &ApplyRecord, view: &str, version: u32) -> bool {
    record.changes.iter().any(|c| {
        c.kind == "feature view"
            && c.name == view
            && c.detail.as_deref().is_some_and(|d| match c.action {
                ChangeAction::Added => d == format!("v{version}"),
                ChangeAction::Changed => {
                    d.contains(&format!("-> v{version} ")) || d.ends_with(&format!("-> v{version}"))
                }
                ChangeAction::Removed => false,
            })
    })
}

/// The versions of `view` the registry knows, without online counts.
pub fn registered_versions(registry: &Registry, view: &str) -> Result<VersionsReport> {
    let history = registry.versions.get(view).ok_or_else(|| {
        Error::NotFound(format!(
            "feature view `{view}` was never applied (views: {})",
            registry
                .versions
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let active = registry.feature_views.get(view).map(|v| v.version);
    // BTreeMap order reversed: newest first.
    let versions: Vec<ViewVersion> = history
        .fingerprints
        .iter()
        .rev()
        .map(|(&version, fingerprint)| ViewVersion {
            version,
            fingerprint: fingerprint.clone(),
            definition: history
                .definitions
                .get(&version)
                .map(|d| d.definition.clone())
                .or_else(|| {
                    registry
                        .feature_views
                        .get(view)
                        .filter(|r| r.version == version)
                        .map(|r| r.definition.clone())
                }),
            created_by: match history.created.get(&version) {
                Some(serial) => registry.history.iter().find(|r| r.serial == *serial),
                // Registries written before creation serials were kept: read the change text.
                None => registry
                    .history
                    .iter()
                    .find(|r| introduced(r, view, version)),
            }
            .map(|r| AppliedBy {
                serial: r.serial,
                at: r.at.clone(),
                definitions_hash: r.definitions_hash.clone(),
                user: r.user.clone(),
                host: r.host.clone(),
            }),
            served: active == Some(version),
            pinned_by: registry
                .feature_services
                .values()
                .filter(|s| {
                    s.features
                        .iter()
                        .any(|r| r.view == view && r.version == Some(version))
                })
                .map(|s| s.name.clone())
                .collect(),
            online_keys: 0,
            online_bytes: 0,
        })
        .collect();
    Ok(VersionsReport {
        view: view.to_string(),
        active,
        versions,
        online_error: None,
    })
}

impl FeatureStore {
    /// Every version `view` has had (see [`VersionsReport`]), with what the online store holds
    /// of each (one walk over the project's online keys).
    pub async fn versions(&self, view: &str) -> Result<VersionsReport> {
        let mut report = registered_versions(self.registry()?, view)?;
        match self.online_store().table_sizes(self.project_name()).await {
            Ok(sizes) => {
                for size in sizes.iter().filter(|s| s.view == view) {
                    if let Some(v) = report
                        .versions
                        .iter_mut()
                        .find(|v| v.version == size.version)
                    {
                        v.online_keys = size.keys;
                        v.online_bytes = size.bytes;
                    }
                }
            }
            Err(e) => report.online_error = Some(e.to_string()),
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ApplyContext;
    use quiver_core::definitions::serialize::parse;

    fn defs(fields: &str) -> quiver_core::Definitions {
        let text = format!(
            r#"
entities: [{{name: user, join_keys: [user_id]}}]
sources: [{{name: s, path: s.parquet, timestamp_field: ts}}]
feature_views:
  - {{name: v, entities: [user], source: s, fields: [{fields}]}}
"#
        );
        quiver_core::Definitions::build_and_validate(&[("f.yaml".into(), parse(&text).unwrap())])
            .unwrap()
    }

    fn context(at: &str, user: &str) -> ApplyContext {
        ApplyContext {
            at: at.to_string(),
            user: Some(user.to_string()),
            host: Some("h".to_string()),
        }
    }

    #[test]
    fn versions_say_which_apply_made_them_and_keep_their_definitions() {
        let v1 = defs("{name: a, type: int64}");
        let v2 = defs("{name: a, type: int64}, {name: b, type: string}");
        let r0 = Registry::empty("p");
        let (r1, _) = r0.apply_with(&v1, &context("2026-01-01T00:00:00Z", "ann"));
        let (r2, _) = r1.apply_with(&v2, &context("2026-02-01T00:00:00Z", "bob"));
        let report = registered_versions(&r2, "v").unwrap();
        assert_eq!(report.active, Some(2));
        let [newest, oldest] = &report.versions[..] else {
            panic!("two versions expected: {report:?}");
        };
        assert_eq!((newest.version, newest.served), (2, true));
        assert_eq!((oldest.version, oldest.served), (1, false));
        let by = newest.created_by.as_ref().unwrap();
        assert_eq!((by.serial, by.user.as_deref()), (2, Some("bob")));
        assert_eq!(
            by.definitions_hash.as_deref(),
            Some(v2.content_hash().as_str())
        );
        assert_eq!(
            oldest.created_by.as_ref().unwrap().user.as_deref(),
            Some("ann")
        );
        // The old version's schema is still known: one field, not two.
        assert_eq!(oldest.definition.as_ref().unwrap().fields.len(), 1);
        assert_eq!(newest.definition.as_ref().unwrap().fields.len(), 2);
        assert_eq!(
            r2.versions["v"].created,
            std::collections::BTreeMap::from([(1, 1), (2, 2)])
        );
        // A registry written before creation serials were kept still says who made each
        // version, from the history's change text.
        let mut old = r2.clone();
        old.versions.get_mut("v").unwrap().created.clear();
        assert_eq!(registered_versions(&old, "v").unwrap(), report);
        assert!(matches!(
            registered_versions(&r2, "nope"),
            Err(Error::NotFound(m)) if m.contains("nope")
        ));
    }

    #[test]
    fn a_version_pinned_by_a_service_says_so() {
        let v1 = defs("{name: a, type: int64}");
        let mut v2 = defs("{name: a, type: string}");
        let (r1, _) = Registry::empty("p").apply_with(&v1, &context("t1", "ann"));
        v2.feature_services.insert(
            "legacy".into(),
            quiver_core::FeatureService {
                name: "legacy".into(),
                features: vec![quiver_core::FeatureRef::parse("v@v1:a").unwrap()],
                description: None,
                logging: None,
            },
        );
        let (r2, _) = r1.apply_with(&v2, &context("t2", "bob"));
        let report = registered_versions(&r2, "v").unwrap();
        let pins: Vec<(u32, bool, Vec<String>)> = report
            .versions
            .iter()
            .map(|v| (v.version, v.served, v.pinned_by.clone()))
            .collect();
        assert_eq!(
            pins,
            [(2, true, vec![]), (1, false, vec!["legacy".to_string()])]
        );
    }
}

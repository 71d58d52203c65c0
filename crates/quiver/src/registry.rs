//! The registry: the applied definitions, each feature view with a version, and a history of
//! applies. Stored as one JSON file (written to a temporary file and renamed, so a crash never
//! leaves it half-written).
//!
//! Versioning: a view's version changes only when its schema fingerprint (join keys, field names
//! and types in order) changes, because the online record layout depends on exactly that and the
//! version is part of every online key. A view removed and later re-added with the same schema
//! gets its old version back; with another schema, the next unused one.

use std::collections::BTreeMap;
use std::path::Path;

use quiver_core::{Definitions, Entity, FeatureService, FeatureView, Source};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FORMAT: u32 = 1;

/// A feature view as registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisteredView {
    pub version: u32,
    pub fingerprint: String,
    pub definition: FeatureView,
    pub updated_at: String,
}

/// The highest version a (possibly removed) view has had, and the fingerprints seen per version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionHistory {
    pub max_version: u32,
    pub fingerprints: BTreeMap<u32, String>,
    /// Per version, its latest definition and the apply that recorded it (kept from 2026-12 on;
    /// registries written before have none for their older versions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub definitions: BTreeMap<u32, VersionDefinition>,
    /// Per version, the serial of the apply that created it (kept from 2026-12 on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created: BTreeMap<u32, u64>,
}

/// A view version's definition as an apply recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionDefinition {
    pub definition: FeatureView,
    /// The serial of the apply that recorded this definition.
    pub serial: u64,
    pub at: String,
}

/// One `quiver apply` that changed something.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyRecord {
    pub serial: u64,
    pub at: String,
    pub changes: Vec<Change>,
    /// [`Definitions::content_hash`] of what was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definitions_hash: Option<String>,
    /// Who applied, from where (`$USER`, the host name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// When, by whom and from where an apply runs.
#[derive(Clone, Debug, Default)]
pub struct ApplyContext {
    /// RFC 3339.
    pub at: String,
    pub user: Option<String>,
    pub host: Option<String>,
}

impl ApplyContext {
    /// Now, `$USER` (or `$LOGNAME`) and this machine's host name.
    pub fn current() -> ApplyContext {
        let non_empty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        ApplyContext {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .and_then(non_empty),
            host: std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .and_then(non_empty),
        }
    }
}

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: ChangeAction,
    /// `entity`, `source`, `feature view` or `feature service`.
    pub kind: String,
    pub name: String,
    /// For views: e.g. `v1 -> v2 (schema changed)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Added,
    Changed,
    Removed,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.action {
            ChangeAction::Added => "+",
            ChangeAction::Changed => "~",
            ChangeAction::Removed => "-",
        };
        write!(f, "{sign} {} `{}`", self.kind, self.name)?;
        if let Some(d) = &self.detail {
            write!(f, " {d}")?;
        }
        Ok(())
    }
}

/// The registry file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub format: u32,
    pub project: String,
    /// Increases by one on every apply that changes something.
    pub serial: u64,
    pub entities: BTreeMap<String, Entity>,
    pub sources: BTreeMap<String, Source>,
    pub feature_views: BTreeMap<String, RegisteredView>,
    pub feature_services: BTreeMap<String, FeatureService>,
    pub versions: BTreeMap<String, VersionHistory>,
    pub history: Vec<ApplyRecord>,
    /// Per `view:v{version}`: event time (ns) up to which it was materialized.
    #[serde(default)]
    pub watermarks: BTreeMap<String, i64>,
    /// Per view: its last materialization (freshness in `/metrics` and `/health`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub materializations: BTreeMap<String, MaterializationRun>,
    /// Per view: its recent materializations and builds, oldest first, the last
    /// [`RUNS_KEPT`] of them (lineage).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runs: BTreeMap<String, Vec<MaterializationRun>>,
}

/// How many runs per view the registry keeps.
pub const RUNS_KEPT: usize = 100;

/// What a run did: load the online store, or build the offline history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    #[default]
    Materialize,
    Build,
}

/// One finished materialization of a view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MaterializationRun {
    #[serde(default)]
    pub kind: RunKind,
    pub version: u32,
    /// When it finished, ns UTC (wall clock).
    pub finished_at: i64,
    /// The event-time window it covered, ns UTC (`start`: none, from the beginning).
    pub start: Option<i64>,
    pub end: i64,
    pub written: u64,
    pub rejected: u64,
    pub seconds: f64,
    /// The newest event time in the online store from materializations of this version, ns
    /// UTC, as of this run: the newest event this run wrote, or the previous run's when this
    /// one wrote nothing newer (what freshness is measured from). `None` for builds, for runs
    /// recorded before Quiver kept it, and while nothing was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_event: Option<i64>,
}

impl Registry {
    /// Records a finished run of `view` (the last [`RUNS_KEPT`] are kept); a materialization is
    /// also the view's latest, what freshness is measured from.
    pub fn record_run(&mut self, view: &str, mut run: MaterializationRun) {
        if run.kind == RunKind::Materialize {
            if let Some(previous) = self.materializations.get(view)
                && previous.version == run.version
            {
                run.newest_event = run.newest_event.max(previous.newest_event);
            }
            self.materializations.insert(view.to_string(), run.clone());
        }
        let runs = self.runs.entry(view.to_string()).or_default();
        runs.push(run);
        if runs.len() > RUNS_KEPT {
            runs.drain(..runs.len() - RUNS_KEPT);
        }
    }

    pub fn empty(project: &str) -> Registry {
        Registry {
            format: FORMAT,
            project: project.to_string(),
            ..Registry::default()
        }
    }

    /// Loads the registry; `Ok(None)` when the file does not exist yet.
    pub fn load(path: &Path) -> Result<Option<Registry>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let reg: Registry = serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!("registry `{}` is unreadable: {e}", path.display()))
        })?;
        if reg.format != FORMAT {
            return Err(Error::Config(format!(
                "registry `{}` has format {}, this Quiver reads format {FORMAT}",
                path.display(),
                reg.format
            )));
        }
        Ok(Some(reg))
    }

    /// Writes the registry atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Internal(format!("cannot serialize the registry: {e}")))?;
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Computes the registry that results from applying `defs`, and the changes. When nothing
    /// changed, the returned registry equals `self` (same serial, no history entry).
    pub fn apply(&self, defs: &Definitions, now: &str) -> (Registry, Vec<Change>) {
        self.apply_with(
            defs,
            &ApplyContext {
                at: now.to_string(),
                ..ApplyContext::default()
            },
        )
    }

    /// [`apply`](Self::apply), recording who applied and from where.
    pub fn apply_with(
        &self,
        defs: &Definitions,
        context: &ApplyContext,
    ) -> (Registry, Vec<Change>) {
        let now = context.at.as_str();
        let serial = self.serial + 1;
        let mut next = self.clone();
        let mut changes = Vec::new();
        diff_map(&self.entities, &defs.entities, "entity", &mut changes);
        diff_map(&self.sources, &defs.sources, "source", &mut changes);

        next.feature_views.clear();
        for (name, view) in &defs.feature_views {
            let fingerprint = view.schema_fingerprint();
            let history = next.versions.entry(name.clone()).or_default();
            let version = match self.feature_views.get(name) {
                Some(old) if old.fingerprint == fingerprint => old.version,
                _ => history
                    .fingerprints
                    .iter()
                    .rev()
                    .find(|(_, f)| **f == fingerprint)
                    .map(|(v, _)| *v)
                    .unwrap_or(history.max_version + 1),
            };
            history.max_version = history.max_version.max(version);
            if history
                .fingerprints
                .insert(version, fingerprint.clone())
                .is_none()
            {
                history.created.insert(version, serial);
            }
            let registered = match self.feature_views.get(name) {
                Some(old) if old.definition == *view && old.version == version => old.clone(),
                Some(old) => {
                    let detail = if old.version != version {
                        format!(
                            "v{} -> v{version} (schema changed; re-materialize)",
                            old.version
                        )
                    } else {
                        format!("v{version} (definition changed, schema unchanged)")
                    };
                    changes.push(Change {
                        action: ChangeAction::Changed,
                        kind: "feature view".into(),
                        name: name.clone(),
                        detail: Some(detail),
                    });
                    RegisteredView {
                        version,
                        fingerprint,
                        definition: view.clone(),
                        updated_at: now.to_string(),
                    }
                }
                None => {
                    changes.push(Change {
                        action: ChangeAction::Added,
                        kind: "feature view".into(),
                        name: name.clone(),
                        detail: Some(format!("v{version}")),
                    });
                    RegisteredView {
                        version,
                        fingerprint,
                        definition: view.clone(),
                        updated_at: now.to_string(),
                    }
                }
            };
            let history = next.versions.entry(name.clone()).or_default();
            let recorded = history.definitions.get(&version);
            if recorded.is_none_or(|r| r.definition != registered.definition) {
                history.definitions.insert(
                    version,
                    VersionDefinition {
                        definition: registered.definition.clone(),
                        serial,
                        at: now.to_string(),
                    },
                );
            }
            next.feature_views.insert(name.clone(), registered);
        }
        for (name, old) in &self.feature_views {
            if !defs.feature_views.contains_key(name) {
                changes.push(Change {
                    action: ChangeAction::Removed,
                    kind: "feature view".into(),
                    name: name.clone(),
                    detail: Some(format!("was v{}", old.version)),
                });
            }
        }
        diff_map(
            &self.feature_services,
            &defs.feature_services,
            "feature service",
            &mut changes,
        );

        if changes.is_empty() {
            return (self.clone(), changes);
        }
        next.entities = defs.entities.clone();
        next.sources = defs.sources.clone();
        next.feature_services = defs.feature_services.clone();
        next.serial = serial;
        next.history.push(ApplyRecord {
            serial,
            at: now.to_string(),
            changes: changes.clone(),
            definitions_hash: Some(defs.content_hash()),
            user: context.user.clone(),
            host: context.host.clone(),
        });
        (next, changes)
    }

    /// The registry after making version `to` of `view` active again, with its definition as
    /// the registry kept it, and the change. Nothing else changes, and the versions' history
    /// stays: rolling forward again (`to` = the version now active) restores what was served.
    /// Refused when the version's definition is not kept, when it reads a source or entity
    /// the registry no longer has, or when a feature service names (unpinned) a feature that
    /// version lacks.
    pub fn rollback(
        &self,
        view: &str,
        to: u32,
        context: &ApplyContext,
    ) -> Result<(Registry, Vec<Change>)> {
        let history = self
            .versions
            .get(view)
            .ok_or_else(|| Error::NotFound(format!("feature view `{view}` was never applied")))?;
        let kept = history.definitions.get(&to).ok_or_else(|| {
            Error::NotFound(format!(
                "feature view `{view}` has no version {to} to roll back to{} (kept: {})",
                if history.fingerprints.contains_key(&to) {
                    " (it was applied before Quiver kept each version's definition)"
                } else {
                    ""
                },
                self.kept_versions(view)
            ))
        })?;
        let active = self.feature_views.get(view);
        if let Some(active) = active
            && active.version == to
            && active.definition == kept.definition
        {
            return Ok((self.clone(), Vec::new()));
        }
        let definition = &kept.definition;
        let mut problems = Vec::new();
        if !self.sources.contains_key(&definition.source) {
            problems.push(format!(
                "it reads source `{}`, which is no longer registered",
                definition.source
            ));
        }
        for entity in definition.entities.iter() {
            if !self.entities.contains_key(entity) {
                problems.push(format!(
                    "it uses entity `{entity}`, which is no longer registered"
                ));
            }
        }
        for service in self.feature_services.values() {
            for r in &service.features {
                if r.view == view
                    && r.version.is_none()
                    && definition.field_index(&r.feature).is_none()
                {
                    problems.push(format!(
                        "feature service `{}` serves `{r}`, which v{to} does not have (pin it as `{view}@v{}:{}` or drop it first)",
                        service.name,
                        active.map_or(to, |a| a.version),
                        r.feature
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "cannot roll feature view `{view}` back to v{to}: {}",
                problems.join("; ")
            )));
        }
        let serial = self.serial + 1;
        let change = Change {
            action: if active.is_some() {
                ChangeAction::Changed
            } else {
                ChangeAction::Added
            },
            kind: "feature view".into(),
            name: view.to_string(),
            detail: Some(match active {
                Some(a) if a.version != to => format!("v{} -> v{to} (rolled back)", a.version),
                Some(_) => format!("v{to} (definition rolled back, schema unchanged)"),
                None => format!("v{to} (rolled back; the view had been removed)"),
            }),
        };
        let mut next = self.clone();
        next.feature_views.insert(
            view.to_string(),
            RegisteredView {
                version: to,
                fingerprint: definition.schema_fingerprint(),
                definition: definition.clone(),
                updated_at: context.at.clone(),
            },
        );
        next.serial = serial;
        next.history.push(ApplyRecord {
            serial,
            at: context.at.clone(),
            changes: vec![change.clone()],
            definitions_hash: Some(next.definitions().content_hash()),
            user: context.user.clone(),
            host: context.host.clone(),
        });
        Ok((next, vec![change]))
    }

    /// The versions of `view` something serves: the active one and those feature services pin.
    pub fn served_versions(&self, view: &str) -> std::collections::BTreeSet<u32> {
        let active = self.feature_views.get(view).map(|v| v.version);
        let pinned = self
            .feature_services
            .values()
            .flat_map(|s| s.features.iter())
            .filter(|r| r.view == view)
            .filter_map(|r| r.version);
        active.into_iter().chain(pinned).collect()
    }

    /// What is wrong with the feature services' pinned references (`view@vN:feature`): each
    /// must name a version whose definition the registry keeps, and a feature of it.
    pub fn pinned_reference_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for service in self.feature_services.values() {
            for r in service.features.iter().filter(|r| r.version.is_some()) {
                let version = r.version.unwrap_or_default();
                let kept = self
                    .versions
                    .get(&r.view)
                    .and_then(|h| h.definitions.get(&version));
                let problem = match kept {
                    None => Some(format!(
                        "feature view `{}` has no kept version {version} (kept: {})",
                        r.view,
                        self.kept_versions(&r.view)
                    )),
                    Some(k) if k.definition.field_index(&r.feature).is_none() => Some(format!(
                        "version {version} of feature view `{}` has no feature `{}`",
                        r.view, r.feature
                    )),
                    Some(_) => None,
                };
                if let Some(p) = problem {
                    errors.push(format!(
                        "feature service `{}`: field `features`: `{r}`: {p}",
                        service.name
                    ));
                }
            }
        }
        errors
    }

    /// `v1, v2` — the versions of `view` whose definitions are kept, or `none`.
    pub fn kept_versions(&self, view: &str) -> String {
        let kept: Vec<String> = self
            .versions
            .get(view)
            .map(|h| h.definitions.keys().map(|v| format!("v{v}")).collect())
            .unwrap_or_default();
        if kept.is_empty() {
            "none".to_string()
        } else {
            kept.join(", ")
        }
    }

    /// The registered definitions (what serving and materialization use).
    pub fn definitions(&self) -> Definitions {
        Definitions {
            entities: self.entities.clone(),
            sources: self.sources.clone(),
            feature_views: self
                .feature_views
                .iter()
                .map(|(k, v)| (k.clone(), v.definition.clone()))
                .collect(),
            feature_services: self.feature_services.clone(),
        }
    }
}

fn diff_map<T: PartialEq>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    kind: &str,
    changes: &mut Vec<Change>,
) {
    for (name, value) in new {
        let action = match old.get(name) {
            None => ChangeAction::Added,
            Some(o) if o != value => ChangeAction::Changed,
            Some(_) => continue,
        };
        changes.push(Change {
            action,
            kind: kind.to_string(),
            name: name.clone(),
            detail: None,
        });
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        changes.push(Change {
            action: ChangeAction::Removed,
            kind: kind.to_string(),
            name: name.clone(),
            detail: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::definitions::serialize::parse;

    fn defs(text: &str) -> Definitions {
        Definitions::build_and_validate(&[("f.yaml".into(), parse(text).unwrap())]).unwrap()
    }

    const V1: &str = r#"
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: s, path: s.parquet, timestamp_field: ts}]
feature_views:
  - {name: v, entities: [user], source: s, ttl: 1d, fields: [{name: a, type: int64}]}
"#;

    #[test]
    fn versions_bump_on_schema_change_only() {
        let r0 = Registry::empty("p");
        let (r1, c1) = r0.apply(&defs(V1), "t1");
        assert_eq!(r1.feature_views["v"].version, 1);
        assert_eq!(c1.len(), 3, "{c1:?}");
        assert_eq!(r1.serial, 1);

        let (r2, c2) = r1.apply(&defs(V1), "t2");
        assert!(c2.is_empty());
        assert_eq!(r2, r1, "re-applying unchanged definitions changes nothing");

        let (r3, c3) = r2.apply(&defs(&V1.replace("ttl: 1d", "ttl: 2d")), "t3");
        assert_eq!(r3.feature_views["v"].version, 1, "ttl is not schema");
        assert_eq!(c3[0].action, ChangeAction::Changed);

        let (r4, c4) = r3.apply(&defs(&V1.replace("type: int64", "type: float64")), "t4");
        assert_eq!(r4.feature_views["v"].version, 2);
        assert!(c4[0].detail.as_deref().unwrap().contains("v1 -> v2"));

        // Back to the first schema: its version comes back.
        let (r5, _) = r4.apply(&defs(V1), "t5");
        assert_eq!(r5.feature_views["v"].version, 1);
        assert_eq!(r5.serial, 4);
    }

    #[test]
    fn removal_and_re_add_keep_version_history() {
        let (r1, _) = Registry::empty("p").apply(&defs(V1), "t1");
        let no_views = "entities: [{name: user, join_keys: [user_id]}]\nsources: [{name: s, path: s.parquet, timestamp_field: ts}]\n";
        let (r2, c2) = r1.apply(&defs(no_views), "t2");
        assert!(r2.feature_views.is_empty());
        assert_eq!(c2[0].action, ChangeAction::Removed);
        let (r3, _) = r2.apply(&defs(&V1.replace("type: int64", "type: string")), "t3");
        assert_eq!(r3.feature_views["v"].version, 2, "next unused version");
    }

    fn ctx(at: &str) -> ApplyContext {
        ApplyContext {
            at: at.to_string(),
            user: Some("ann".into()),
            host: None,
        }
    }

    #[test]
    fn rollback_restores_a_kept_version_and_forward_again_is_lossless() {
        let (r1, _) = Registry::empty("p").apply(&defs(V1), "t1");
        let v2_text = V1.replace("type: int64}", "type: int64}, {name: b, type: string}");
        let (r2, _) = r1.apply(&defs(&v2_text.replace("ttl: 1d", "ttl: 3d")), "t2");
        assert_eq!(r2.feature_views["v"].version, 2);

        let (back, changes) = r2.rollback("v", 1, &ctx("t3")).unwrap();
        assert_eq!(back.feature_views["v"].version, 1);
        assert_eq!(
            back.feature_views["v"].definition,
            r1.feature_views["v"].definition
        );
        assert_eq!(back.serial, r2.serial + 1);
        assert_eq!(changes[0].detail.as_deref(), Some("v2 -> v1 (rolled back)"));
        assert_eq!(back.history.last().unwrap().user.as_deref(), Some("ann"));

        let (forward, _) = back.rollback("v", 2, &ctx("t4")).unwrap();
        assert_eq!(
            forward.feature_views["v"].definition,
            r2.feature_views["v"].definition
        );
        assert_eq!(
            forward.feature_views["v"].fingerprint,
            r2.feature_views["v"].fingerprint
        );
        assert_eq!(
            forward.versions, r2.versions,
            "the versions' history is untouched"
        );

        // Rolling back to the version served changes nothing.
        let (same, none) = forward.rollback("v", 2, &ctx("t5")).unwrap();
        assert!(none.is_empty());
        assert_eq!(same, forward);
        assert!(matches!(
            forward.rollback("v", 9, &ctx("t6")),
            Err(Error::NotFound(m)) if m.contains("kept: v1, v2")
        ));
    }

    #[test]
    fn rollback_is_refused_when_a_service_needs_a_feature_the_version_lacks() {
        let v2 = format!(
            "{}feature_services: [{{name: svc, features: [\"v:b\", \"v@v1:a\"]}}]\n",
            V1.replace("type: int64}", "type: int64}, {name: b, type: string}")
        );
        let (r1, _) = Registry::empty("p").apply(&defs(V1), "t1");
        let (r2, _) = r1.apply(&defs(&v2), "t2");
        assert!(r2.pinned_reference_errors().is_empty());
        assert_eq!(
            r2.served_versions("v").into_iter().collect::<Vec<_>>(),
            vec![1, 2]
        );
        let err = r2.rollback("v", 1, &ctx("t3")).unwrap_err().to_string();
        assert!(err.contains("feature service `svc` serves `v:b`"), "{err}");
    }

    #[test]
    fn pinned_references_must_name_a_kept_version_and_its_feature() {
        let (r1, _) = Registry::empty("p").apply(&defs(V1), "t1");
        let pinned =
            |f: &str| format!("{V1}feature_services: [{{name: svc, features: [\"{f}\"]}}]\n");
        let (ok, _) = r1.apply(&defs(&pinned("v@v1:a")), "t2");
        assert!(ok.pinned_reference_errors().is_empty());
        let (bad, _) = r1.apply(&defs(&pinned("v@v3:a")), "t2");
        let errors = bad.pinned_reference_errors();
        assert!(
            errors[0].contains("no kept version 3 (kept: v1)"),
            "{errors:?}"
        );
        let (bad, _) = r1.apply(&defs(&pinned("v@v1:zz")), "t2");
        assert!(bad.pinned_reference_errors()[0].contains("has no feature `zz`"));
    }

    #[test]
    fn runs_are_bounded_and_materializations_stay_the_latest() {
        let mut r = Registry::empty("p");
        for i in 0..(RUNS_KEPT as i64 + 5) {
            let kind = if i % 2 == 0 {
                RunKind::Materialize
            } else {
                RunKind::Build
            };
            r.record_run(
                "v",
                MaterializationRun {
                    kind,
                    end: i,
                    ..MaterializationRun::default()
                },
            );
        }
        let runs = &r.runs["v"];
        assert_eq!(runs.len(), RUNS_KEPT);
        assert_eq!(runs.first().unwrap().end, 5, "the oldest were dropped");
        assert_eq!(runs.last().unwrap().end, RUNS_KEPT as i64 + 4);
        // The latest materialization (an even end), not the latest build.
        assert_eq!(r.materializations["v"].end, RUNS_KEPT as i64 + 4);
        assert_eq!(r.materializations["v"].kind, RunKind::Materialize);
    }

    #[test]
    fn the_newest_event_carries_over_runs_of_one_version() {
        let mut r = Registry::empty("p");
        let run = |version, newest_event| MaterializationRun {
            version,
            newest_event,
            ..MaterializationRun::default()
        };
        r.record_run("v", run(1, Some(50)));
        // An incremental run that wrote nothing keeps the newest event online.
        r.record_run("v", run(1, None));
        assert_eq!(r.materializations["v"].newest_event, Some(50));
        // An older event does not move it back.
        r.record_run("v", run(1, Some(40)));
        assert_eq!(r.materializations["v"].newest_event, Some(50));
        r.record_run("v", run(1, Some(70)));
        assert_eq!(r.materializations["v"].newest_event, Some(70));
        // A new version starts over: its online table is new.
        r.record_run("v", run(2, None));
        assert_eq!(r.materializations["v"].newest_event, None);
    }
}

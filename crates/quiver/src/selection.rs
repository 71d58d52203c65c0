//! Which features a request wants: a list of `view:feature` references or a feature service,
//! resolved against the catalog (every view and feature must exist) into [`FeatureRef`]s.

use quiver_core::FeatureRef;

use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// Which features to read.
#[derive(Clone, Debug)]
pub enum FeatureSelection {
    /// `view:feature` references.
    Features(Vec<String>),
    /// A feature service by name.
    Service(String),
}

impl FeatureSelection {
    /// The selection's references, checking every view and feature exists.
    pub fn resolve(&self, catalog: &Catalog) -> Result<Vec<FeatureRef>> {
        let refs = match self {
            FeatureSelection::Service(name) => catalog
                .registry()
                .feature_services
                .get(name)
                .ok_or_else(|| Error::NotFound(format!("unknown feature service `{name}`")))?
                .features
                .clone(),
            FeatureSelection::Features(list) => {
                if list.is_empty() {
                    return Err(Error::InvalidRequest(
                        "`features` is empty; name at least one `view:feature`".into(),
                    ));
                }
                list.iter()
                    .map(|s| FeatureRef::parse(s).map_err(Error::InvalidRequest))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        let mut unknown = Vec::new();
        for r in &refs {
            match catalog.view_of(r) {
                Err(Error::NotFound(m)) if r.version.is_some() => {
                    unknown.push(format!("`{r}` ({m})"))
                }
                Err(_) => unknown.push(format!("`{r}` (no feature view `{}`)", r.view)),
                Ok(v) if v.field_index(&r.feature).is_none() => unknown.push(format!(
                    "`{r}` (feature view `{}` has no feature `{}`)",
                    r.view_label(),
                    r.feature
                )),
                Ok(_) => {}
            }
        }
        if !unknown.is_empty() {
            return Err(Error::NotFound(format!(
                "unknown features: {}",
                unknown.join(", ")
            )));
        }
        Ok(refs)
    }
}

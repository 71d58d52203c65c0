//! The plan of an online read: output names (checked for collisions), the views to read in
//! request order, each view's entity keys built from the request's typed key columns, and where
//! each requested feature sits. Everything that can be wrong with a request is found here,
//! before any store is touched.

use std::collections::{BTreeMap, HashMap};

use quiver_core::{EntityKey, KeyValue, ScalarType};

use super::OnlineRequest;
use crate::catalog::{Catalog, ServedView};
use crate::error::{Error, Result};

/// One view to read: which, and the entity key of every request row.
pub(crate) struct ViewRead<'a> {
    pub served: &'a ServedView,
    pub keys: Vec<EntityKey>,
}

/// A planned request.
pub(crate) struct Plan<'a> {
    /// Output names: the join keys as given, then one per feature.
    pub names: Vec<String>,
    pub views: Vec<ViewRead<'a>>,
    /// Per requested feature: (index into `views`, field position).
    pub features: Vec<(usize, usize)>,
    pub rows: usize,
}

/// Plans `request` against `catalog`.
pub(crate) fn plan<'a>(catalog: &'a Catalog, request: &OnlineRequest) -> Result<Plan<'a>> {
    let refs = request.features.resolve(catalog)?;
    let mut names: Vec<String> = request.entities.iter().map(|(k, _)| k.clone()).collect();
    let mut seen: HashMap<String, String> = HashMap::new();
    for r in &refs {
        let name = r.output_name(request.full_feature_names);
        if let Some(other) = seen.insert(name.clone(), r.view_label()) {
            return Err(Error::InvalidRequest(format!(
                "feature name `{name}` is requested twice (views `{other}` and `{}`); set `full_feature_names: true` or drop the duplicate",
                r.view_label()
            )));
        }
        names.push(name);
    }

    // The views to read, each (view, pinned version) once, in request order.
    let mut order: Vec<(&str, Option<u32>)> = Vec::new();
    for r in &refs {
        if !order.contains(&(r.view.as_str(), r.version)) {
            order.push((&r.view, r.version));
        }
    }
    let served: Vec<&ServedView> = order
        .iter()
        .map(|(v, version)| catalog.view_at(v, *version))
        .collect::<Result<_>>()?;
    let columns = key_columns(&served, &request.entities)?;
    let rows = request.entities.first().map_or(0, |(_, v)| v.len());
    let views = served
        .into_iter()
        .map(|served| ViewRead {
            keys: (0..rows)
                .map(|i| {
                    EntityKey(
                        served
                            .definition
                            .join_keys
                            .iter()
                            .map(|k| columns[k.name.as_str()][i].clone())
                            .collect(),
                    )
                })
                .collect(),
            served,
        })
        .collect();
    let features = refs
        .iter()
        .map(|r| {
            let view = order
                .iter()
                .position(|v| *v == (r.view.as_str(), r.version))
                .unwrap_or(0);
            let field = catalog
                .view_of(r)?
                .field_index(&r.feature)
                .ok_or_else(|| Error::Internal(format!("feature `{r}` vanished")))?;
            Ok((view, field))
        })
        .collect::<Result<_>>()?;
    Ok(Plan {
        names,
        views,
        features,
        rows,
    })
}

/// The request's key columns by name: every join key the views need, nothing else, equal
/// lengths, each value of its key's type.
fn key_columns<'r>(
    views: &[&ServedView],
    entities: &'r [(String, Vec<KeyValue>)],
) -> Result<HashMap<&'r str, &'r [KeyValue]>> {
    let mut needed: BTreeMap<&str, ScalarType> = BTreeMap::new();
    for v in views {
        for k in &v.definition.join_keys {
            needed.insert(&k.name, k.key_type);
        }
    }
    let rows = entities.first().map_or(0, |(_, v)| v.len());
    let mut columns: HashMap<&str, &[KeyValue]> = HashMap::new();
    for (name, values) in entities {
        let Some(ty) = needed.get(name.as_str()) else {
            let expected: Vec<String> = needed.keys().map(|k| format!("`{k}`")).collect();
            return Err(Error::InvalidRequest(format!(
                "entity key `{name}` is not a join key of the requested feature views (expected {})",
                expected.join(", ")
            )));
        };
        if values.len() != rows {
            return Err(Error::InvalidRequest(format!(
                "entity key `{name}` has {} values but `{}` has {rows}; every entity column needs one value per row",
                values.len(),
                entities[0].0
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.fits(*ty)) {
            return Err(Error::InvalidRequest(format!(
                "entity key `{name}` row {i}: expected {}, got `{}`",
                expected_kind(*ty),
                values[i]
            )));
        }
        if columns.insert(name.as_str(), values).is_some() {
            return Err(Error::InvalidRequest(format!(
                "entity key `{name}` is given twice"
            )));
        }
    }
    if let Some(missing) = needed.keys().find(|k| !columns.contains_key(*k)) {
        return Err(Error::InvalidRequest(format!(
            "missing entity key `{missing}` (needed by the requested feature views)"
        )));
    }
    Ok(columns)
}

fn expected_kind(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::String => "a string",
        _ => "an integer",
    }
}

/// The entity keys of `view` for column-major entity rows (join key name, one value per row),
/// checked like a request's.
pub(crate) fn view_keys(
    view: &ServedView,
    entities: &[(String, Vec<KeyValue>)],
) -> Result<Vec<EntityKey>> {
    let columns = key_columns(&[view], entities)?;
    let rows = entities.first().map_or(0, |(_, v)| v.len());
    Ok((0..rows)
        .map(|i| {
            EntityKey(
                view.definition
                    .join_keys
                    .iter()
                    .map(|k| columns[k.name.as_str()][i].clone())
                    .collect(),
            )
        })
        .collect())
}

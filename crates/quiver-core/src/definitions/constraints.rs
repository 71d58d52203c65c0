//! Per-field constraints (`min`, `max`, `not_null`, `one_of`, `dim`) and the check every incoming
//! value passes before it is written online.

use serde::{Deserialize, Serialize};

use crate::definitions::FeatureView;
use crate::entity_key::EntityKey;
use crate::record::Record;
use crate::value::Value;

/// A row that may not be written: which view, entity and field, the value and what is wrong.
/// Displays as `feature view `v`: entity `user_id=42`: field `age`: value `200` is above ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub view: String,
    /// `key=value` per join key, comma-separated.
    pub entity: String,
    pub field: String,
    /// The value, shortened for display.
    pub value: String,
    pub problem: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "feature view `{}`: entity `{}`: field `{}`: value `{}` {}",
            self.view, self.entity, self.field, self.value, self.problem
        )
    }
}

impl FeatureView {
    /// `key=value` per join key of `key`, comma-separated: how messages name an entity.
    pub fn entity_label(&self, key: &EntityKey) -> String {
        let parts: Vec<String> = self
            .join_keys
            .iter()
            .zip(&key.0)
            .map(|(k, v)| format!("{}={v}", k.name))
            .collect();
        parts.join(",")
    }

    /// Checks a row's values against the fields' constraints, before it is written online.
    pub fn check_row(&self, key: &EntityKey, record: &Record) -> Result<(), Rejection> {
        for (field, value) in self.fields.iter().zip(&record.values) {
            if let Err(problem) = field.constraints.check(value) {
                return Err(Rejection {
                    view: self.name.clone(),
                    entity: self.entity_label(key),
                    field: field.name.clone(),
                    value: value.display_short(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// Constraints on one field. Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// Inclusive lower bound for numbers (each element, for numeric lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Inclusive upper bound for numbers (each element, for numeric lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_null: bool,
    /// Allowed values, in their JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Exact list length (a fixed-dimension vector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
}

impl Constraints {
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }

    /// Checks a value; the error says what is wrong with it (the caller adds view, field and
    /// entity key).
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if value.is_null() {
            return if self.not_null {
                Err("is null but the field is `not_null`".to_string())
            } else {
                Ok(())
            };
        }
        if let Some(dim) = self.dim
            && let Some(len) = value.list_len()
            && len != dim
        {
            return Err(format!("has {len} elements but `dim` is {dim}"));
        }
        if self.min.is_some() || self.max.is_some() {
            let numbers: Vec<f64> = match value {
                Value::Int32List(v) => v.iter().map(|x| *x as f64).collect(),
                Value::Int64List(v) => v.iter().map(|x| *x as f64).collect(),
                Value::Float32List(v) => v.iter().map(|x| *x as f64).collect(),
                Value::Float64List(v) => v.clone(),
                other => other.as_f64().into_iter().collect(),
            };
            for x in numbers {
                if x.is_nan() {
                    return Err("is NaN, outside any `min`/`max`".to_string());
                }
                if let Some(min) = self.min
                    && x < min
                {
                    return Err(format!("{x} is below `min` {min}"));
                }
                if let Some(max) = self.max
                    && x > max
                {
                    return Err(format!("{x} is above `max` {max}"));
                }
            }
        }
        if let Some(allowed) = &self.one_of {
            let json = value.to_json();
            if !allowed.iter().any(|a| json_eq(a, &json)) {
                let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
                return Err(format!("is not one of [{}]", list.join(", ")));
            }
        }
        Ok(())
    }
}

fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_each_constraint() {
        let c = Constraints {
            min: Some(0.0),
            max: Some(130.0),
            not_null: true,
            ..Default::default()
        };
        assert!(c.check(&Value::Int32(30)).is_ok());
        assert!(
            c.check(&Value::Int32(-1))
                .unwrap_err()
                .contains("below `min` 0")
        );
        assert!(
            c.check(&Value::Int32(131))
                .unwrap_err()
                .contains("above `max`")
        );
        assert!(c.check(&Value::Null).unwrap_err().contains("not_null"));
        let c = Constraints {
            one_of: Some(vec![json!("US"), json!("DE")]),
            ..Default::default()
        };
        assert!(c.check(&Value::String("DE".into())).is_ok());
        assert!(
            c.check(&Value::String("FR".into()))
                .unwrap_err()
                .contains("not one of")
        );
        assert!(c.check(&Value::Null).is_ok());
        let c = Constraints {
            dim: Some(3),
            ..Default::default()
        };
        assert!(c.check(&Value::Float32List(vec![1.0; 3])).is_ok());
        assert!(
            c.check(&Value::Float32List(vec![1.0; 2]))
                .unwrap_err()
                .contains("2 elements")
        );
    }
}

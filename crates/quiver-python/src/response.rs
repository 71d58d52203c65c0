//! `OnlineResponse`: the answer of `get_online_features`, embedded (typed values) or remote
//! (the feature server's JSON), with Feast's `to_dict`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::Value as J;

use crate::convert::{epoch_seconds, json_to_py, value_to_py};

/// The columns of an answer as the feature server sent them.
pub struct JsonColumns {
    pub names: Vec<String>,
    pub values: Vec<Vec<J>>,
    pub statuses: Vec<Vec<String>>,
    /// ns UTC.
    pub event_timestamps: Vec<Vec<i64>>,
}

pub enum Answer {
    Embedded(quiver::OnlineResponse),
    Remote(JsonColumns),
}

/// Online features for entity rows: join-key columns first, then the features in request order.
#[pyclass(frozen, module = "quiver._quiver", name = "OnlineResponse")]
pub struct OnlineResponse {
    pub answer: Answer,
}

impl OnlineResponse {
    fn names(&self) -> &[String] {
        match &self.answer {
            Answer::Embedded(r) => &r.feature_names,
            Answer::Remote(c) => &c.names,
        }
    }

    fn column<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        match &self.answer {
            Answer::Embedded(r) => {
                for v in &r.columns[i].values {
                    out.append(value_to_py(py, v)?)?;
                }
            }
            Answer::Remote(c) => {
                for v in &c.values[i] {
                    out.append(json_to_py(py, v)?)?;
                }
            }
        }
        Ok(out)
    }

    fn status_column<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyList>> {
        match &self.answer {
            Answer::Embedded(r) => {
                PyList::new(py, r.columns[i].statuses.iter().map(|s| s.as_str()))
            }
            Answer::Remote(c) => PyList::new(py, &c.statuses[i]),
        }
    }

    fn timestamps(&self, i: usize) -> &[i64] {
        match &self.answer {
            Answer::Embedded(r) => &r.columns[i].event_timestamps,
            Answer::Remote(c) => &c.event_timestamps[i],
        }
    }
}

#[pymethods]
impl OnlineResponse {
    /// `{name: [value per entity row]}`, join keys first, like Feast's `to_dict`. With
    /// `include_event_timestamps`, `name__ts` holds each value's event time in epoch seconds
    /// (Feast's shape); with `include_statuses`, `name__status` holds `PRESENT`, `NOT_FOUND`,
    /// `NULL_VALUE` or `OUTSIDE_MAX_AGE`.
    #[pyo3(signature = (include_event_timestamps = false, include_statuses = false))]
    fn to_dict<'py>(
        &self,
        py: Python<'py>,
        include_event_timestamps: bool,
        include_statuses: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (i, name) in self.names().iter().enumerate() {
            out.set_item(PyString::new(py, name), self.column(py, i)?)?;
            if include_event_timestamps {
                let secs = self.timestamps(i).iter().map(|t| epoch_seconds(*t));
                out.set_item(format!("{name}__ts"), PyList::new(py, secs)?)?;
            }
            if include_statuses {
                out.set_item(format!("{name}__status"), self.status_column(py, i)?)?;
            }
        }
        Ok(out)
    }

    /// Column names: join keys, then features (`view__feature` with full feature names).
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.names().to_vec()
    }

    /// `{name: [status per entity row]}`.
    #[getter]
    fn statuses<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (i, name) in self.names().iter().enumerate() {
            out.set_item(name, self.status_column(py, i)?)?;
        }
        Ok(out)
    }

    /// `{name: [event time per entity row, ns since the epoch UTC]}` (0 for join keys and
    /// missing values, like Feast).
    #[getter]
    fn event_timestamps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (i, name) in self.names().iter().enumerate() {
            out.set_item(name, PyList::new(py, self.timestamps(i))?)?;
        }
        Ok(out)
    }

    /// Per entity row, the layers that answered its views (`online`, `offline`, `computed`);
    /// the embedded store only (`None` from a remote client).
    #[getter]
    fn layers(&self) -> Option<Vec<Vec<&'static str>>> {
        match &self.answer {
            Answer::Embedded(r) => Some(
                r.layers
                    .iter()
                    .map(|row| row.iter().map(|l| l.as_str()).collect())
                    .collect(),
            ),
            Answer::Remote(_) => None,
        }
    }

    /// The answer as a `pyarrow.Table` (types inferred by pyarrow from the values).
    fn to_arrow<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let columns = self.to_dict(py, false, false)?;
        py.import("pyarrow")?.call_method1("table", (columns,))
    }

    /// The answer as a pandas DataFrame, like Feast's `to_df`.
    fn to_df<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.to_arrow(py)?.call_method0("to_pandas")
    }

    /// Same as [`to_df`](Self::to_df).
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.to_df(py)
    }

    fn __len__(&self) -> usize {
        match &self.answer {
            Answer::Embedded(r) => r.rows(),
            Answer::Remote(c) => c.values.first().map_or(0, Vec::len),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "OnlineResponse({} rows: {})",
            self.__len__(),
            self.names().join(", ")
        )
    }
}

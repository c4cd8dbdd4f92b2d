//! The CloudWatch Embedded Metric Format (EMF): one [`Record`] (namespace `joinkeeper`,
//! dimension `Cluster`, optionally a second dimension set, metrics, properties) → one JSON object.
//! Nothing here knows which metrics exist: that is the [catalogue](super::catalogue).
//!
//! Written by hand with `serde_json` rather than with an EMF crate: the format is one small JSON
//! object, and the crates that exist add their own dependency trees (and some an async flush or an
//! agent socket) for what is twenty lines here.

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "joinkeeper";
pub const CLUSTER: &str = "Cluster";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: some metrics of one cluster at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    cluster: String,
    breakdown: Option<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, f64)>,
    properties: Map<String, Value>,
}

impl Record {
    pub fn new(cluster: &str) -> Self {
        Record {
            cluster: cluster.to_owned(),
            breakdown: None,
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name, unit, value));
        self
    }

    /// Publishes the metrics a second time with the dimensions `Cluster` and `key`.
    pub fn by(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.breakdown = Some((key, value.into()));
        self
    }

    /// A value searchable in the log line, not a metric.
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }

    /// True when the record carries no metric (a sink writes nothing for it).
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The EMF JSON object.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut dimensions = vec![json!([CLUSTER])];
        let mut root = self.properties.clone();
        if let Some((key, value)) = &self.breakdown {
            dimensions.push(json!([CLUSTER, key]));
            root.insert((*key).to_owned(), json!(value));
        }
        root.insert(CLUSTER.to_owned(), json!(self.cluster));
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        for (name, _, value) in &self.metrics {
            root.insert((*name).to_owned(), json!(value));
        }
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }
}

/// Checks a line against the EMF specification and returns (metric name → unit, dimension
/// sets). Every metric and dimension named in the directive has its value at the top level.
#[cfg(test)]
pub(super) fn parse_emf(line: &Value) -> (Vec<(String, String)>, Vec<Vec<String>>) {
    let aws = &line["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 0), "{line}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
    assert_eq!(directives.len(), 1);
    let d = &directives[0];
    assert_eq!(d["Namespace"], NAMESPACE);
    let dims: Vec<Vec<String>> = d["Dimensions"]
        .as_array()
        .expect("dimension sets")
        .iter()
        .map(|set| {
            set.as_array()
                .expect("a dimension set")
                .iter()
                .map(|k| k.as_str().expect("key").to_owned())
                .collect()
        })
        .collect();
    for key in dims.iter().flatten() {
        assert!(
            line[key].is_string(),
            "dimension {key} has a string value: {line}"
        );
    }
    let metrics: Vec<(String, String)> = d["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            let name = m["Name"].as_str().expect("name").to_owned();
            assert!(
                line[&name].is_number(),
                "metric {name} has a number: {line}"
            );
            (name, m["Unit"].as_str().expect("unit").to_owned())
        })
        .collect();
    assert!(!metrics.is_empty() && metrics.len() <= 100);
    (metrics, dims)
}

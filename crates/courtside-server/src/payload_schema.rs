//! JSON Schema checks of publication payloads, per namespace (`[schemas.<namespace>]`): how an
//! app team checks its own payloads — seed 003's Zod schemas, seed 004's Joi — without forking
//! the server. A payload that does not match is refused (error 107, HTTP 400) naming where and
//! why, and nothing is stored. Schemas are compiled once, at start; references to other
//! documents (`$ref` to a URL or a file) are not fetched.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use courtside_core::ChannelName;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::ClientError;

/// One namespace's schema, as configured: a JSON file, or the schema inline as a TOML table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// A JSON file holding the schema (relative paths from the working directory).
    pub file: Option<PathBuf>,
    /// The schema itself.
    pub inline: Option<Value>,
}

/// Why a schema could not be used (the server does not start).
#[derive(Debug, thiserror::Error)]
#[error("configuration key `{key}`: {reason}")]
pub struct SchemaError {
    pub key: String,
    pub reason: String,
}

/// The compiled schemas, by namespace.
#[derive(Default)]
pub struct PayloadSchemas {
    by_namespace: HashMap<String, jsonschema::Validator>,
}

impl std::fmt::Debug for PayloadSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_namespace.keys()).finish()
    }
}

impl PayloadSchemas {
    /// Reads and compiles every configured schema; each names a configured namespace.
    pub fn compile(configs: &BTreeMap<String, SchemaConfig>, namespaces: &[&str]) -> Result<Self, SchemaError> {
        let mut by_namespace = HashMap::new();
        for (namespace, config) in configs {
            let key = format!("schemas.{namespace}");
            let refused = |reason: String| SchemaError { key: key.clone(), reason };
            if !namespaces.contains(&namespace.as_str()) {
                return Err(refused("names no configured namespace".into()));
            }
            let schema = match (&config.file, &config.inline) {
                (Some(file), None) => {
                    let text = std::fs::read_to_string(file).map_err(|error| refused(format!("cannot read {}: {error}", file.display())))?;
                    serde_json::from_str(&text).map_err(|error| refused(format!("{} is not JSON: {error}", file.display())))?
                }
                (None, Some(inline)) => inline.clone(),
                _ => return Err(refused("set exactly one of `file` and `inline`".into())),
            };
            let validator = jsonschema::validator_for(&schema).map_err(|error| refused(format!("not a usable JSON Schema: {error}")))?;
            by_namespace.insert(namespace.clone(), validator);
        }
        Ok(Self { by_namespace })
    }

    /// Checks `data` (one JSON value) against the schema of `channel`'s namespace, if it has one.
    pub fn check(&self, channel: &ChannelName, data: &[u8]) -> Result<(), ClientError> {
        let Some(validator) = self.by_namespace.get(channel.namespace()) else { return Ok(()) };
        let value: Value = serde_json::from_slice(data).map_err(|error| ClientError::BadRequest(format!("`data`: {error}")))?;
        match validator.validate(&value) {
            Ok(()) => Ok(()),
            Err(error) => {
                let at = match error.instance_path().as_str() {
                    "" => "/".to_string(),
                    path => path.to_string(),
                };
                Err(ClientError::BadRequest(format!("`data` does not match the schema of namespace {:?} at {at}: {error}", channel.namespace())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas(inline: Value) -> PayloadSchemas {
        let configs = BTreeMap::from([("match".to_string(), SchemaConfig { file: None, inline: Some(inline) })]);
        PayloadSchemas::compile(&configs, &["match", "court"]).expect("compiles")
    }

    #[test]
    fn payloads_are_checked_in_their_namespace_only() {
        let schemas = schemas(json!({ "type": "object", "required": ["home"], "properties": { "home": { "type": "integer", "minimum": 0 } } }));
        let channel = |name: &str| ChannelName::parse(name).expect("valid");
        assert!(schemas.check(&channel("match:1"), br#"{"home":3}"#).is_ok());
        let refused = schemas.check(&channel("match:1"), br#"{"home":-1}"#).expect_err("below the minimum");
        assert!(refused.to_string().contains("at /home"), "{refused}");
        assert!(schemas.check(&channel("match:1"), br#"{}"#).is_err(), "required");
        assert!(schemas.check(&channel("court:1"), br#"{"home":-1}"#).is_ok(), "no schema there");
    }

    #[test]
    fn a_schema_for_an_unknown_namespace_or_a_broken_schema_stops_the_start() {
        let configs = BTreeMap::from([("nowhere".to_string(), SchemaConfig { file: None, inline: Some(json!({})) })]);
        assert!(PayloadSchemas::compile(&configs, &["match"]).is_err());
        let configs = BTreeMap::from([("match".to_string(), SchemaConfig { file: None, inline: Some(json!({ "type": 12 })) })]);
        assert!(PayloadSchemas::compile(&configs, &["match"]).is_err());
        let configs = BTreeMap::from([("match".to_string(), SchemaConfig::default())]);
        assert!(PayloadSchemas::compile(&configs, &["match"]).is_err(), "neither file nor inline");
    }
}

//! Parameter Store adapter: reads the join record and manages the single-flight lock parameter.

use aws_sdk_ssm::types::ParameterType;

use super::AwsCallError;
use crate::freshness::StoredRecord;
use crate::meta::RecordMeta;
use crate::record::RecordError;

#[derive(Clone, Debug)]
pub struct ParameterStore {
    client: aws_sdk_ssm::Client,
}

/// One parameter found under a path.
#[derive(Clone, Debug)]
pub struct PathEntry {
    pub name: String,
    pub value: String,
    pub modified: Option<time::OffsetDateTime>,
}

/// The record as read, with the parameter version it came from (`None` when absent).
#[derive(Clone, Debug)]
pub struct RecordRead {
    pub stored: StoredRecord,
    pub version: Option<i64>,
}

impl ParameterStore {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        ParameterStore { client }
    }

    /// Reads what the functions know of a cluster's record: its meta (String) and the record's
    /// current version, read without decryption. A meta that is missing, invalid or describes
    /// another version is [`StoredRecord::Corrupt`]: a state the policy decides on, not an error.
    pub async fn read_record(
        &self,
        meta_name: &str,
        record_name: &str,
    ) -> Result<RecordRead, AwsCallError> {
        let Some((_, version)) = self.get(record_name, false).await? else {
            return Ok(RecordRead {
                stored: StoredRecord::Absent,
                version: None,
            });
        };
        let stored = match self.get(meta_name, false).await? {
            None => StoredRecord::Corrupt(RecordError::Json(
                "no metadata parameter beside the record".into(),
            )),
            Some((text, _)) => match RecordMeta::from_json(&text) {
                Ok(meta) if meta.record_version == version => StoredRecord::Present(meta),
                Ok(meta) => StoredRecord::Corrupt(RecordError::Json(format!(
                    "metadata describes record version {}, the record is at version {version}",
                    meta.record_version
                ))),
                Err(err) => StoredRecord::Corrupt(err),
            },
        };
        Ok(RecordRead {
            stored,
            version: Some(version),
        })
    }

    /// Every parameter under `path` (recursive), values undecrypted.
    pub async fn list_path(&self, path: &str) -> Result<Vec<PathEntry>, AwsCallError> {
        let mut found = Vec::new();
        self.each_under(path, true, |p| {
            found.push(PathEntry {
                name: p.name().unwrap_or_default().to_owned(),
                value: p.value().unwrap_or_default().to_owned(),
                modified: p
                    .last_modified_date()
                    .and_then(|d| time::OffsetDateTime::from_unix_timestamp(d.secs()).ok()),
            })
        })
        .await?;
        Ok(found)
    }

    /// The names of the parameters directly under `path`, values never kept (read without
    /// decryption).
    pub async fn names_under(&self, path: &str) -> Result<Vec<String>, AwsCallError> {
        let mut names = Vec::new();
        self.each_under(path, false, |p| names.extend(p.name().map(str::to_owned)))
            .await?;
        Ok(names)
    }

    /// Every page of `GetParametersByPath` (without decryption), each parameter to `each`.
    async fn each_under(
        &self,
        path: &str,
        recursive: bool,
        mut each: impl FnMut(&aws_sdk_ssm::types::Parameter),
    ) -> Result<(), AwsCallError> {
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(path)
            .recursive(recursive)
            .with_decryption(false)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                AwsCallError::new("ssm:GetParametersByPath", &e.into_service_error())
            })?;
            page.parameters().iter().for_each(&mut each);
        }
        Ok(())
    }

    /// Reads a parameter's value and version; `None` when it does not exist.
    pub async fn get(
        &self,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<(String, i64)>, AwsCallError> {
        match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(decrypt)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .parameter()
                .map(|p| (p.value().unwrap_or_default().to_owned(), p.version()))),
            Err(err) => {
                let err = err.into_service_error();
                if err.is_parameter_not_found() {
                    Ok(None)
                } else {
                    Err(AwsCallError::new("ssm:GetParameter", &err))
                }
            }
        }
    }

    /// Creates a String parameter only if it does not exist. `Ok(false)` when it already does:
    /// Parameter Store decides the one winner among concurrent creators.
    pub async fn create_only(&self, name: &str, value: &str) -> Result<bool, AwsCallError> {
        let result = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => {
                let err = err.into_service_error();
                if err.is_parameter_already_exists() {
                    Ok(false)
                } else {
                    Err(AwsCallError::new("ssm:PutParameter", &err))
                }
            }
        }
    }

    /// Replaces a String parameter's value.
    pub async fn overwrite(&self, name: &str, value: &str) -> Result<(), AwsCallError> {
        self.overwrite_with(name, value, false).await
    }

    /// [`ParameterStore::overwrite`] with prompt retries ([`super::patience::prompt_retries`]):
    /// for a lease's renewal, which the run may skip once but must not wait seconds for.
    pub async fn overwrite_promptly(&self, name: &str, value: &str) -> Result<(), AwsCallError> {
        self.overwrite_with(name, value, true).await
    }

    async fn overwrite_with(
        &self,
        name: &str,
        value: &str,
        prompt: bool,
    ) -> Result<(), AwsCallError> {
        let call = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true);
        let sent = if prompt {
            call.customize()
                .config_override(super::patience::prompt_ssm(&self.client))
                .send()
                .await
        } else {
            call.send().await
        };
        sent.map(|_| ())
            .map_err(|err| AwsCallError::new("ssm:PutParameter", &err.into_service_error()))
    }

    /// Deletes a parameter; a parameter already gone counts as deleted.
    pub async fn delete(&self, name: &str) -> Result<(), AwsCallError> {
        self.delete_with(name, false).await
    }

    /// Deletes `name` in one attempt, never retried by the SDK: for a lease's release. Once the
    /// delete took effect another caller may create the parameter at once; a retry of a delete
    /// whose answer was lost would delete that successor's lease.
    pub async fn delete_once(&self, name: &str) -> Result<(), AwsCallError> {
        self.delete_with(name, true).await
    }

    async fn delete_with(&self, name: &str, once: bool) -> Result<(), AwsCallError> {
        let call = self.client.delete_parameter().name(name);
        let sent = if once {
            call.customize()
                .config_override(aws_sdk_ssm::config::Builder::default().retry_config(
                    aws_sdk_ssm::config::retry::RetryConfig::standard().with_max_attempts(1),
                ))
                .send()
                .await
        } else {
            call.send().await
        };
        match sent {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = err.into_service_error();
                if err.is_parameter_not_found() {
                    Ok(())
                } else {
                    Err(AwsCallError::new("ssm:DeleteParameter", &err))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Fault injection with the SDK's own mocking support: throttling and 5xx answers are
    //! retried with backoff by the SDK's retry policy, then surface as a typed error.

    use std::time::Duration;

    use aws_sdk_ssm::config::retry::RetryConfig;
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::types::Parameter;
    use aws_sdk_ssm::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

    fn meta_json(record_version: i64) -> String {
        format!(
            r#"{{"version":1,"cluster":"demo","token_id":"abcdef","created_at":"2026-11-27T00:00:00Z","expires_at":"2026-11-28T00:00:00Z","record_version":{record_version}}}"#
        )
    }

    fn parameter(name: &'static str, value: String, version: i64) -> GetParameterOutput {
        GetParameterOutput::builder()
            .parameter(
                Parameter::builder()
                    .name(name)
                    .value(value)
                    .version(version)
                    .build(),
            )
            .build()
    }

    const RECORD: &str = "/joinkeeper/demo/join-record";
    const META: &str = "/joinkeeper/demo/join-record-meta";

    fn retrying(
        max_attempts: u32,
    ) -> impl Fn(aws_sdk_ssm::config::Builder) -> aws_sdk_ssm::config::Builder {
        move |c| {
            c.retry_config(
                RetryConfig::standard()
                    .with_max_attempts(max_attempts)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
        }
    }

    #[tokio::test]
    async fn throttling_and_5xx_are_retried_then_succeed() {
        let rule = mock!(Client::get_parameter)
            .sequence()
            .http_status(400, Some(THROTTLED.to_owned()))
            .http_status(503, None)
            .output(|| parameter(RECORD, "AQICAHh-encrypted-blob".into(), 3))
            .build();
        let meta = mock!(Client::get_parameter).then_output(|| parameter(META, meta_json(3), 5));
        let client = mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            [&rule, &meta],
            retrying(4)
        );
        let read = ParameterStore::new(client)
            .read_record(META, RECORD)
            .await
            .expect("succeeds after retries");
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(read.version, Some(3));
        assert!(matches!(read.stored, StoredRecord::Present(ref r) if r.token_id == "abcdef"));
    }

    #[tokio::test]
    async fn persistent_throttling_becomes_a_typed_error_without_the_secret() {
        let rule = mock!(Client::get_parameter)
            .sequence()
            .http_status(400, Some(THROTTLED.to_owned()))
            .times(3)
            .build();
        let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule], retrying(3));
        let err = ParameterStore::new(client)
            .read_record(META, RECORD)
            .await
            .expect_err("throttled");
        assert_eq!(rule.num_calls(), 3, "the SDK retried up to its limit");
        assert!(err.is_throttling(), "{err:?}");
        assert_eq!(err.operation, "ssm:GetParameter");
    }

    #[tokio::test]
    async fn corrupt_or_mismatched_meta_is_a_state_not_an_error() {
        for meta_value in ["kubeadm join garbage".to_owned(), meta_json(2)] {
            let record = mock!(Client::get_parameter)
                .then_output(|| parameter(RECORD, "AQICAHh-blob".into(), 3));
            let meta = mock!(Client::get_parameter)
                .then_output(move || parameter(META, meta_value.clone(), 1));
            let client = mock_client!(
                aws_sdk_ssm,
                RuleMode::Sequential,
                [&record, &meta],
                retrying(1)
            );
            let read = ParameterStore::new(client)
                .read_record(META, RECORD)
                .await
                .expect("read");
            assert!(
                matches!(read.stored, StoredRecord::Corrupt(_)),
                "{:?}",
                read.stored
            );
        }
    }
}

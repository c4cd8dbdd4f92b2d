//! Parameter Store adapter: reads the join record and manages the single-flight lock parameter.

use aws_sdk_ssm::types::ParameterType;

use super::AwsCallError;
use crate::freshness::StoredRecord;
use crate::record::JoinRecord;

#[derive(Clone, Debug)]
pub struct ParameterStore {
    client: aws_sdk_ssm::Client,
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

    /// Reads and parses a cluster's join record. A value that is not a valid record is reported
    /// as [`StoredRecord::Corrupt`], not as an error: it is a state the policy decides on.
    pub async fn read_record(&self, name: &str) -> Result<RecordRead, AwsCallError> {
        match self.get(name, true).await? {
            None => Ok(RecordRead {
                stored: StoredRecord::Absent,
                version: None,
            }),
            Some((value, version)) => {
                let stored = match JoinRecord::from_json(&value) {
                    Ok(record) => StoredRecord::Present(record),
                    Err(err) => StoredRecord::Corrupt(err),
                };
                Ok(RecordRead {
                    stored,
                    version: Some(version),
                })
            }
        }
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
        self.client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| AwsCallError::new("ssm:PutParameter", &err.into_service_error()))
    }

    /// Deletes a parameter; a parameter already gone counts as deleted.
    pub async fn delete(&self, name: &str) -> Result<(), AwsCallError> {
        match self.client.delete_parameter().name(name).send().await {
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

    fn record_json() -> String {
        r#"{"version":1,"cluster":"demo","source":"kubeadm","endpoint":"10.0.0.10:6443","token_id":"abcdef","token_secret":"s3cr3ttokenvalu3","ca_cert_hash":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","created_at":"2026-11-27T00:00:00Z","expires_at":"2026-11-28T00:00:00Z"}"#.to_owned()
    }

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
            .output(|| {
                GetParameterOutput::builder()
                    .parameter(
                        Parameter::builder()
                            .name("/joinkeeper/demo/join-record")
                            .value(record_json())
                            .version(3)
                            .build(),
                    )
                    .build()
            })
            .build();
        let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule], retrying(4));
        let read = ParameterStore::new(client)
            .read_record("/joinkeeper/demo/join-record")
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
            .read_record("/joinkeeper/demo/join-record")
            .await
            .expect_err("throttled");
        assert_eq!(rule.num_calls(), 3, "the SDK retried up to its limit");
        assert!(err.is_throttling(), "{err:?}");
        assert_eq!(err.operation, "ssm:GetParameter");
    }

    #[tokio::test]
    async fn corrupt_value_is_a_state_not_an_error() {
        let rule = mock!(Client::get_parameter).then_output(|| {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name("n")
                        .value("kubeadm join garbage")
                        .version(1)
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule], retrying(1));
        let read = ParameterStore::new(client)
            .read_record("n")
            .await
            .expect("read");
        assert!(matches!(read.stored, StoredRecord::Corrupt(_)));
    }
}

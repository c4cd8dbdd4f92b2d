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
            None => Ok(RecordRead { stored: StoredRecord::Absent, version: None }),
            Some((value, version)) => {
                let stored = match JoinRecord::from_json(&value) {
                    Ok(record) => StoredRecord::Present(record),
                    Err(err) => StoredRecord::Corrupt(err),
                };
                Ok(RecordRead { stored, version: Some(version) })
            }
        }
    }

    /// Reads a parameter's value and version; `None` when it does not exist.
    pub async fn get(&self, name: &str, decrypt: bool) -> Result<Option<(String, i64)>, AwsCallError> {
        match self.client.get_parameter().name(name).with_decryption(decrypt).send().await {
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

//! Run Command helper: sends one SSM document to one instance and waits for its result with
//! bounded polling and an overall deadline. The core goes through
//! [`Context::run_command`](crate::Context::run_command) and
//! [`Context::send_command`](crate::Context::send_command), which count the commands sent; this
//! adapter records no metric. Command output is returned to the caller and never logged here: the
//! regenerate document's output may hold a token.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::AwsCallError;
use crate::deadline::Deadline;
use crate::names::InstanceId;

#[derive(Clone, Debug)]
pub struct CommandRunner {
    client: aws_sdk_ssm::Client,
    poll: Duration,
    deadline: Duration,
}

/// One document to run on one instance, on behalf of one cluster (the dimension of the
/// `CommandsSent` metric that [`Context::send_command`](crate::Context::send_command) records).
#[derive(Clone, Debug)]
pub struct CommandRequest<'a> {
    pub cluster: &'a str,
    pub instance: &'a InstanceId,
    pub document: &'a str,
    pub parameters: Vec<(&'static str, String)>,
    pub comment: String,
}

/// A command that ended with exit code 0.
#[derive(Clone)]
pub struct CommandOutput {
    pub command_id: String,
    /// Standard output, as SSM returns it (at most 24,000 characters). May hold secrets for
    /// some documents: never log it whole.
    pub stdout: String,
}

impl fmt::Debug for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandOutput")
            .field("command_id", &self.command_id)
            .field("stdout", &format_args!("<{} bytes>", self.stdout.len()))
            .finish()
    }
}

/// Why a command did not succeed. Messages carry statuses and exit codes, never output.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RunCommandError {
    #[error("instance {instance} is not reachable by Run Command (not managed, or agent offline)")]
    InvalidInstance { instance: InstanceId },
    #[error("command {command_id} could not be delivered to {instance} ({detail})")]
    Undeliverable {
        instance: InstanceId,
        command_id: String,
        detail: String,
    },
    #[error("command {command_id} failed on {instance} with exit code {exit_code}")]
    Failed {
        instance: InstanceId,
        command_id: String,
        exit_code: i32,
    },
    #[error("command {command_id} timed out on {instance}")]
    TimedOut {
        instance: InstanceId,
        command_id: String,
    },
    #[error("command {command_id} was cancelled on {instance}")]
    Cancelled {
        instance: InstanceId,
        command_id: String,
    },
    #[error("command {command_id} on {instance} did not finish within {waited:?}; cancelled")]
    DeadlineExceeded {
        instance: InstanceId,
        command_id: String,
        waited: Duration,
    },
    /// The agent did not take the command in time (offline, or its buffer full); cancelled.
    #[error("command {command_id} was not taken by the agent on {instance} within {waited:?}; cancelled")]
    NotPickedUp {
        instance: InstanceId,
        command_id: String,
        waited: Duration,
    },
    /// The invocation's own deadline came first; the command was left running (its lease or
    /// record names it, so a later invocation picks it up).
    #[error("command {command_id} on {instance} still running when this invocation had to stop")]
    OutOfTime {
        instance: InstanceId,
        command_id: String,
    },
    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

impl RunCommandError {
    /// True when another instance might succeed where this one did not.
    pub fn try_another_instance(&self) -> bool {
        !matches!(
            self,
            RunCommandError::Aws(_) | RunCommandError::OutOfTime { .. }
        )
    }
}

/// Where an invocation stands, from its Status, StatusDetails and ResponseCode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Waiting,
    Succeeded,
    Failed(i32),
    Undeliverable,
    TimedOut,
    Cancelled,
}

/// Pure mapping of GetCommandInvocation's answer to [`Progress`].
pub fn classify(status: &str, details: &str, response_code: i32) -> Progress {
    match (status, details) {
        (_, "Undeliverable" | "DeliveryTimedOut" | "InvalidPlatform" | "AccessDenied") => {
            Progress::Undeliverable
        }
        ("Success", _) => Progress::Succeeded,
        ("TimedOut", _) | (_, "ExecutionTimedOut") => Progress::TimedOut,
        ("Cancelled" | "Cancelling", _) => Progress::Cancelled,
        ("Failed", _) => Progress::Failed(response_code),
        _ => Progress::Waiting,
    }
}

/// Whether the agent has taken the command: SSM's `Pending` is "not yet sent to the managed
/// node" and `Delayed` "sent but not received; the system retries"; every other status comes
/// from the agent or after it.
pub fn picked_up(status: &str) -> bool {
    !matches!(status, "Pending" | "Delayed")
}

impl CommandRunner {
    pub fn new(client: aws_sdk_ssm::Client, poll: Duration, deadline: Duration) -> Self {
        CommandRunner {
            client,
            poll,
            deadline,
        }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Best effort: a command past its deadline must not keep running unobserved.
    pub async fn cancel(&self, instance: &InstanceId, command_id: &str) {
        let _ = self
            .client
            .cancel_command()
            .command_id(command_id)
            .instance_ids(instance.as_str())
            .send()
            .await;
    }

    /// Sends the document and returns the command id without waiting.
    pub async fn send(&self, request: &CommandRequest<'_>) -> Result<String, RunCommandError> {
        let mut send = self
            .client
            .send_command()
            .document_name(request.document)
            .instance_ids(request.instance.as_str())
            .comment(truncate(&request.comment, 100))
            // Delivery timeout; SSM's minimum is 30 s.
            .timeout_seconds(self.deadline.as_secs().clamp(30, 2_592_000) as i32);
        for (name, value) in &request.parameters {
            send = send.parameters(*name, vec![value.clone()]);
        }
        match send.send().await {
            Ok(out) => out
                .command()
                .and_then(|c| c.command_id())
                .map(str::to_owned)
                .ok_or_else(|| {
                    RunCommandError::Aws(AwsCallError {
                        operation: "ssm:SendCommand",
                        code: None,
                        message: "response had no command id".into(),
                    })
                }),
            Err(err) => {
                let err = err.into_service_error();
                if err.is_invalid_instance_id() {
                    Err(RunCommandError::InvalidInstance {
                        instance: request.instance.clone(),
                    })
                } else {
                    Err(AwsCallError::new("ssm:SendCommand", &err).into())
                }
            }
        }
    }

    /// Polls one invocation until it ends or the deadline passes (then cancels it).
    pub async fn wait(
        &self,
        instance: &InstanceId,
        command_id: &str,
        deadline: &Deadline,
    ) -> Result<CommandOutput, RunCommandError> {
        self.wait_picked_up(instance, command_id, deadline, None)
            .await
    }

    /// [`CommandRunner::wait`], giving up (and cancelling) when the agent has not taken the
    /// command within `pickup`: an agent gone offline while `PingStatus` still says Online, or
    /// one whose buffer is full, leaves it `Pending`, and a read-only question is better asked
    /// of another control plane than waited on until the delivery timeout.
    pub async fn wait_picked_up(
        &self,
        instance: &InstanceId,
        command_id: &str,
        deadline: &Deadline,
        pickup: Option<Duration>,
    ) -> Result<CommandOutput, RunCommandError> {
        let started = Instant::now();
        loop {
            // Every poll, the first included, comes a poll interval after the last step: a
            // command polled the moment it was sent has not been delivered (SSM answers
            // `InvocationDoesNotExist` or `Pending`), one call spent per command for nothing.
            if !deadline.sleep(self.poll).await {
                return Err(RunCommandError::OutOfTime {
                    instance: instance.clone(),
                    command_id: command_id.to_owned(),
                });
            }
            // A throttled poll (after the SDK's own retries) says nothing about the command, which
            // runs on: polled again next time, and never taken for an agent that has not picked
            // it up (cancelling it could throw away a drain under way).
            let polled = match self.poll_status(instance, command_id).await {
                Err(RunCommandError::Aws(err)) if err.is_throttling() => {
                    Ok((Progress::Waiting, true, String::new()))
                }
                other => other,
            };
            match polled? {
                (Progress::Waiting, taken, _) => {
                    if !taken && pickup.is_some_and(|p| started.elapsed() >= p) {
                        self.cancel(instance, command_id).await;
                        return Err(RunCommandError::NotPickedUp {
                            instance: instance.clone(),
                            command_id: command_id.to_owned(),
                            waited: started.elapsed(),
                        });
                    }
                }
                (Progress::Succeeded, _, stdout) => {
                    return Ok(CommandOutput {
                        command_id: command_id.to_owned(),
                        stdout,
                    });
                }
                (Progress::Failed(exit_code), _, _) => {
                    return Err(RunCommandError::Failed {
                        instance: instance.clone(),
                        command_id: command_id.to_owned(),
                        exit_code,
                    })
                }
                (Progress::Undeliverable, _, _) => {
                    return Err(RunCommandError::Undeliverable {
                        instance: instance.clone(),
                        command_id: command_id.to_owned(),
                        detail: "agent did not receive it".into(),
                    })
                }
                (Progress::TimedOut, _, _) => {
                    return Err(RunCommandError::TimedOut {
                        instance: instance.clone(),
                        command_id: command_id.to_owned(),
                    })
                }
                (Progress::Cancelled, _, _) => {
                    return Err(RunCommandError::Cancelled {
                        instance: instance.clone(),
                        command_id: command_id.to_owned(),
                    })
                }
            }
            if started.elapsed() + self.poll > self.deadline {
                self.cancel(instance, command_id).await;
                return Err(RunCommandError::DeadlineExceeded {
                    instance: instance.clone(),
                    command_id: command_id.to_owned(),
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// One GetCommandInvocation. An invocation not yet visible (eventual consistency) is Waiting.
    pub async fn poll_once(
        &self,
        instance: &InstanceId,
        command_id: &str,
    ) -> Result<(Progress, String), RunCommandError> {
        let (progress, _, stdout) = self.poll_status(instance, command_id).await?;
        Ok((progress, stdout))
    }

    /// [`CommandRunner::poll_once`], with whether the agent has taken the command
    /// ([`picked_up`]).
    async fn poll_status(
        &self,
        instance: &InstanceId,
        command_id: &str,
    ) -> Result<(Progress, bool, String), RunCommandError> {
        match self
            .client
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance.as_str())
            .customize()
            .config_override(super::patience::prompt_ssm(&self.client))
            .send()
            .await
        {
            Ok(out) => {
                let status = out.status().map(|s| s.as_str()).unwrap_or("Pending");
                let details = out.status_details().unwrap_or_default();
                let progress = classify(status, details, out.response_code());
                Ok((
                    progress,
                    picked_up(status),
                    out.standard_output_content().unwrap_or_default().to_owned(),
                ))
            }
            Err(err) => {
                let err = err.into_service_error();
                if err.is_invocation_does_not_exist() {
                    Ok((Progress::Waiting, false, String::new()))
                } else {
                    Err(AwsCallError::new("ssm:GetCommandInvocation", &err).into())
                }
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pending_and_delayed_are_not_taken_by_the_agent() {
        for status in ["Pending", "Delayed"] {
            assert!(!picked_up(status), "{status}");
        }
        for status in [
            "InProgress",
            "Success",
            "Failed",
            "TimedOut",
            "Cancelling",
            "Cancelled",
        ] {
            assert!(picked_up(status), "{status}");
        }
    }

    #[test]
    fn classify_table() {
        let cases = [
            ("Pending", "Pending", 0, Progress::Waiting),
            ("InProgress", "InProgress", -1, Progress::Waiting),
            ("Delayed", "Delayed", -1, Progress::Waiting),
            ("Success", "Success", 0, Progress::Succeeded),
            ("Failed", "Failed", 2, Progress::Failed(2)),
            ("Failed", "Undeliverable", -1, Progress::Undeliverable),
            ("Failed", "DeliveryTimedOut", -1, Progress::Undeliverable),
            ("TimedOut", "DeliveryTimedOut", -1, Progress::Undeliverable),
            ("TimedOut", "ExecutionTimedOut", -1, Progress::TimedOut),
            ("Failed", "ExecutionTimedOut", -1, Progress::TimedOut),
            ("Cancelled", "Cancelled", -1, Progress::Cancelled),
            ("Cancelling", "Cancelling", -1, Progress::Cancelled),
        ];
        for (status, details, code, want) in cases {
            assert_eq!(classify(status, details, code), want, "{status}/{details}");
        }
    }
}

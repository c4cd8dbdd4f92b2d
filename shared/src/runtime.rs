//! The Lambda runtime loop shared by the functions: JSON logs, one span per invocation carrying
//! the function name and request id, the invocation's deadline handed to the core, and errors
//! reported to Lambda as a classed `Diagnostic`.

use std::future::Future;

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use crate::context::Invocation;
use crate::deadline::Deadline;
use crate::handler::HandlerError;

/// Serves `handler` until the runtime stops. Build clients before calling this, once per process.
pub async fn serve<F, Fut, R>(
    function: &'static str,
    function_timeout: std::time::Duration,
    handler: F,
) -> Result<(), Error>
where
    F: Fn(Value, Invocation) -> Fut,
    Fut: Future<Output = Result<R, HandlerError>>,
    R: Serialize,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span =
            tracing::info_span!("invocation", function, request_id = %event.context.request_id);
        let inv = Invocation::new(
            event.context.request_id.clone(),
            Deadline::for_invocation(event.context.deadline(), function_timeout),
        );
        span.in_scope(|| {
            tracing::debug!(remaining_ms = inv.deadline.remaining().as_millis() as u64, "invocation started")
        });
        let result = handler(event.payload, inv).instrument(span.clone()).await;
        result.map_err(|err| {
            span.in_scope(|| tracing::error!(error = %err, error_type = err.error_type(), "invocation failed"));
            Diagnostic::from(err)
        })
    }))
    .await
}

//! The Lambda runtime loop shared by the functions: JSON logs, one span per invocation carrying
//! the function name and request id, and the handler's errors reported to Lambda.

use std::future::Future;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

/// Serves `handler` until the runtime stops. Build clients before calling this, once per process.
pub async fn serve<F, Fut, R>(function: &'static str, handler: F) -> Result<(), Error>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
    R: Serialize,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span =
            tracing::info_span!("invocation", function, request_id = %event.context.request_id);
        let result = handler(event.payload).instrument(span.clone()).await;
        if let Err(err) = &result {
            span.in_scope(|| tracing::error!(error = %err, "invocation failed"));
        }
        result
    }))
    .await
}

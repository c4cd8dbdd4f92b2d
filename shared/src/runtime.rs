//! The Lambda runtime loop shared by the functions: JSON logs, one span per invocation carrying
//! the function name and request id, the invocation's deadline handed to the core, and errors
//! reported to Lambda as a classed `Diagnostic`.

use std::future::Future;
use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use crate::context::{Context, Invocation};
use crate::deadline::Deadline;
use crate::handler::HandlerError;

/// A function's whole `main`: JSON logs, the configuration and the AWS clients built once per
/// process (outside the handler), then `handler` served with the shared [`Context`] until the
/// runtime stops. `function` names the function in the spans and in every AWS call's User-Agent.
pub async fn serve_function<F, Fut, R>(function: &'static str, handler: F) -> Result<(), Error>
where
    F: Fn(Arc<Context>, Value, Invocation) -> Fut,
    Fut: Future<Output = Result<R, HandlerError>>,
    R: Serialize,
{
    crate::telemetry::init();
    let config = crate::Config::from_env()?;
    let clients = crate::aws::AwsClients::for_lambda(function)?;
    let timeout = config.function_timeout;
    let ctx = Arc::new(Context::new(config, &clients));
    serve(function, timeout, move |event, inv| {
        handler(ctx.clone(), event, inv)
    })
    .await
}

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

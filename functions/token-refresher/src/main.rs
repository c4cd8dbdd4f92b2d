//! token-refresher: on the EventBridge schedule, keeps every cluster's join record valid,
//! reconciles every cluster's pending lifecycle actions (the safety net for lost events), and
//! cleans up leftover lease parameters.
//!
//! Thin handler: configuration and AWS clients are built once per process, outside the handler
//! (`joinkeeper::runtime::serve_function`).

#![recursion_limit = "256"] // the reconcile futures nest deeply (SDK calls inside retry loops)

use joinkeeper::handler::handle_schedule;
use lambda_runtime::Error;

// One thread: an invocation waits on AWS, it does not compute, and Lambda gives a small function
// a fraction of one vCPU; worker threads would only add to start-up and memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    joinkeeper::runtime::serve_function("token-refresher", |ctx, event, inv| async move {
        handle_schedule(&ctx, &event, &inv).await
    })
    .await
}

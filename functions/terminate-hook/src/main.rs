//! terminate-hook: an `EC2 Instance-terminate Lifecycle Action` event wakes the reconciler of the group's
//! cluster, which drains and deletes the Node, then completes the hook with CONTINUE — for this
//! instance and every other action of the cluster pending at the time.
//!
//! Thin handler: configuration and AWS clients are built once per process, outside the handler
//! (`joinkeeper::runtime::serve_function`).

#![recursion_limit = "256"] // the reconcile futures nest deeply (SDK calls inside retry loops)

use joinkeeper::handler::handle_lifecycle_delivery;
use joinkeeper::lifecycle::Transition;
use lambda_runtime::Error;

// One thread: an invocation waits on AWS, it does not compute, and Lambda gives a small function
// a fraction of one vCPU; worker threads would only add to start-up and memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    joinkeeper::runtime::serve_function("terminate-hook", |ctx, event, inv| async move {
        handle_lifecycle_delivery(&ctx, &event, Transition::Terminating, &inv).await
    })
    .await
}

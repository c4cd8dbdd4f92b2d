//! launch-hook: for `EC2 Instance-launch Lifecycle Action` events, holds the new worker until its
//! Node is Ready (CONTINUE) or abandons it past the join deadline (ABANDON).

#![recursion_limit = "256"] // the hook futures nest deeply (SDK calls inside retry loops)

use joinkeeper::hooks::Hooks;
use joinkeeper::lifecycle::Transition;
use joinkeeper::regenerate::Regenerator;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    joinkeeper::telemetry::init();
    let config = joinkeeper::Config::from_env()?;
    let clients = joinkeeper::aws::AwsClients::from_env().await;
    let hooks = Hooks::new(Regenerator::new(config, &clients), &clients);
    let hooks = &hooks;
    joinkeeper::runtime::serve("launch-hook", |event| async move {
        Ok::<_, Error>(hooks.handle_event(&event, Transition::Launching).await?)
    })
    .await
}

//! What the functions did, as seen from inside the harness: each invocation's record, and every
//! write to a lease parameter (an SDK interceptor, which also pulls a killed invocation's switch).

use std::sync::{Arc, Mutex};

use aws_sdk_ssm::operation::delete_parameter::DeleteParameterInput;
use aws_sdk_ssm::operation::put_parameter::PutParameterInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use joinkeeper::lease::now_ms;
use serde_json::Value;

tokio::task_local! {
    /// The invocation a task runs (the interceptor reads it to attribute each call and to
    /// pull the kill switch).
    pub static INVOCATION: Running;
}

/// What the interceptor knows of the invocation whose task makes a call.
#[derive(Clone, Debug)]
pub struct Running {
    pub id: String,
    /// Killed when its AWS request number `.0` leaves (1-based); `.1` is told then.
    pub kill_at_call: Option<(usize, Arc<tokio::sync::Notify>)>,
    pub calls: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseOp {
    Create,
    Overwrite,
    Delete,
}

/// One write to a lease parameter by a function.
#[derive(Clone, Debug)]
pub struct LeaseWrite {
    pub invocation: String,
    pub name: String,
    pub op: LeaseOp,
    pub holder: String,
    pub expires_at_ms: i64,
    pub sent_ms: i64,
    /// When the answer came back, and whether it said the write took effect.
    pub answered: Option<(i64, bool)>,
}

#[derive(Clone, Debug, Default)]
pub struct InvocationRecord {
    pub id: String,
    pub function: &'static str,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// "ok", "error: …", "killed" (the harness), "timed out" (Lambda's deadline).
    pub outcome: String,
    pub summary: String,
    /// AWS requests it sent, and the one it was to be killed at.
    pub calls: usize,
    pub kill_planned: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Journal {
    pub lease: Vec<LeaseWrite>,
    pub invocations: Vec<InvocationRecord>,
}

pub type Shared = Arc<Mutex<Journal>>;

#[derive(Clone, Debug)]
struct LeaseSlot(usize);
impl Storable for LeaseSlot {
    type Storer = StoreReplace<Self>;
}

/// Records every write to a lease parameter (`…/leases/…`, takeover markers aside): which
/// invocation sent it, the holder and expiry in its value, when it left, and whether its answer
/// said it took effect.
#[derive(Clone, Debug)]
pub struct LeaseWatch(pub Shared);

impl Intercept for LeaseWatch {
    fn name(&self) -> &'static str {
        "LeaseWatch"
    }

    fn read_before_execution(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = ctx.input();
        let lease = |name: &str| name.contains("/leases/") && !name.contains(".takeover.");
        let (name, op, value) = if let Some(p) = input.downcast_ref::<PutParameterInput>() {
            let name = p.name().unwrap_or_default().to_owned();
            let op = if p.overwrite() == Some(true) {
                LeaseOp::Overwrite
            } else {
                LeaseOp::Create
            };
            (name, op, p.value().unwrap_or_default().to_owned())
        } else if let Some(d) = input.downcast_ref::<DeleteParameterInput>() {
            (
                d.name().unwrap_or_default().to_owned(),
                LeaseOp::Delete,
                String::new(),
            )
        } else {
            return Ok(());
        };
        if !lease(&name) {
            return Ok(());
        }
        let parsed: Value = serde_json::from_str(&value).unwrap_or(Value::Null);
        let write = LeaseWrite {
            invocation: INVOCATION
                .try_with(|r| r.id.clone())
                .unwrap_or_else(|_| "?".into()),
            name,
            op,
            holder: parsed["holder"].as_str().unwrap_or_default().to_owned(),
            expires_at_ms: parsed["expires_at_ms"].as_i64().unwrap_or(0),
            sent_ms: now_ms(),
            answered: None,
        };
        if let Ok(mut j) = self.0.lock() {
            j.lease.push(write);
            cfg.interceptor_state()
                .store_put(LeaseSlot(j.lease.len() - 1));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let _ = INVOCATION.try_with(|r| {
            let n = r.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if let Some((at, switch)) = &r.kill_at_call {
                if n == *at {
                    switch.notify_one();
                }
            }
        });
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(LeaseSlot(i)) = cfg.load::<LeaseSlot>().cloned() {
            let ok = matches!(ctx.output_or_error(), Some(Ok(_)));
            if let Ok(mut j) = self.0.lock() {
                if let Some(w) = j.lease.get_mut(i) {
                    w.answered = Some((now_ms(), ok));
                }
            }
        }
        Ok(())
    }
}

//! The libvirt hook's `prepare` of a marked domain: may this host start its copy?
//! Answered from the witness's record on a task of its own (the router does not
//! wait for the witness): a copy starts only where the record allows, and takes
//! the record as it does, so that a claim the peer has in flight loses
//! ([`crate::witness::claim::plan_start_claim`]). Without a witness, always.

use crate::domain::{self, HostCtx};
use crate::witness::claim::Claimed;
use tokio::sync::oneshot;

/// Reply "ok", or "refused: WHY" (the hook fails the start with WHY).
pub(super) fn may_start(ctx: &HostCtx, domain: String, reply: oneshot::Sender<String>) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let answer = match domain::claim_start(&ctx, &domain).await {
            None => "ok".to_string(),
            Some(Ok(Claimed::Won(v))) => {
                let epoch = v.map(|v| v.value.epoch);
                tracing::info!(domain, ?epoch, "witness: this host's copy may start");
                "ok".to_string()
            }
            Some(Ok(Claimed::Lost(why))) => format!("refused: {why}"),
            Some(Err(e)) => format!(
                "refused: the witness (etcd) did not answer ({e}), so this host cannot \
                 tell whether its copy of {domain} is the copy of record; start it once \
                 the witness answers"
            ),
        };
        tracing::info!(domain, %answer, "libvirt hook: may this copy start?");
        let _ = reply.send(answer);
    });
}

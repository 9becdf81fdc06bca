//! Group commit: one task owns its store handle, takes every item waiting (up to a bound) and
//! stores them with one call — one transaction — while the previous batch commits, batches form by
//! themselves. Handlers hold a [`GroupCommit`] (a sender) and wait for their item's outcome. Used
//! for heartbeats (`Store::heartbeats`) and inventories (`Store::check_in_inventories`).

use std::future::Future;
use std::sync::Arc;

use patchwarden_store::fleet::{CheckInOutcome, Heartbeat, HeartbeatOutcome, NewInventory};
use patchwarden_store::{Store, StoreError};

use crate::error::{Answer, ApiError};

/// One batch's failure is every item's in it: shared.
type Reply<O> = tokio::sync::oneshot::Sender<Result<O, Arc<StoreError>>>;

/// The handle of a batching task (cheap to clone).
pub struct GroupCommit<I, O> {
    sender: tokio::sync::mpsc::Sender<(I, Reply<O>)>,
    /// What is batched, for errors ("heartbeat").
    what: &'static str,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        GroupCommit {
            sender: self.sender.clone(),
            what: self.what,
        }
    }
}

/// Heartbeats, stored together.
pub type HeartbeatBatcher = GroupCommit<Heartbeat, HeartbeatOutcome>;
/// Inventory check-ins, stored together.
pub type InventoryBatcher = GroupCommit<NewInventory, CheckInOutcome>;

/// Most heartbeats stored in one transaction.
const HEARTBEATS_PER_BATCH: usize = 512;
/// Most inventories stored in one transaction (each carries its package set and head).
const INVENTORIES_PER_BATCH: usize = 128;

impl HeartbeatBatcher {
    /// Starts the heartbeat batcher on the current runtime.
    pub fn heartbeats(store: Store) -> HeartbeatBatcher {
        GroupCommit::start(HEARTBEATS_PER_BATCH, "heartbeat", move |beats, now| {
            let store = store.clone();
            async move { store.heartbeats(&beats, &now).await }
        })
    }
}

impl InventoryBatcher {
    /// Starts the inventory batcher on the current runtime.
    pub fn inventories(store: Store) -> InventoryBatcher {
        GroupCommit::start(INVENTORIES_PER_BATCH, "inventory", move |entries, now| {
            let store = store.clone();
            async move { store.check_in_inventories(&entries, &now).await }
        })
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts the batching task: `write` stores a batch (at the time given) and answers each
    /// item's outcome in order.
    fn start<F, Fut>(max_batch: usize, what: &'static str, write: F) -> GroupCommit<I, O>
    where
        F: Fn(Vec<I>, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, StoreError>> + Send,
    {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(I, Reply<O>)>(16 * max_batch);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut items = vec![first.0];
                let mut replies = vec![first.1];
                while items.len() < max_batch {
                    match receiver.try_recv() {
                        Ok((item, reply)) => {
                            items.push(item);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let now = patchwarden_model::now_rfc3339();
                match write(items, now).await {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        GroupCommit { sender, what }
    }

    /// Stores an item with the next batch (503 when the store or the task failed).
    pub async fn store(&self, item: I) -> Answer<O> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let what = self.what;
        let stopped = || ApiError::Unavailable(format!("store: the {what} batcher stopped"));
        self.sender
            .send((item, reply))
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| ApiError::Unavailable(format!("store: {e}")))
    }
}

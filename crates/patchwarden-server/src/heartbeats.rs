//! Group commit for heartbeats: one task owns its store handle, takes every heartbeat waiting and
//! stores them in one transaction (`Store::heartbeats`); batches form by themselves while the
//! previous one commits. Handlers hold a [`HeartbeatBatcher`] (a sender) and wait for their reply.

use patchwarden_store::fleet::{Heartbeat, HeartbeatOutcome};
use std::sync::Arc;

use patchwarden_store::{Store, StoreError};

use crate::error::{Answer, ApiError};

/// Most heartbeats stored in one transaction.
const MAX_BATCH: usize = 512;

/// One batch's failure is every heartbeat's in it: shared.
type Reply = tokio::sync::oneshot::Sender<Result<HeartbeatOutcome, Arc<StoreError>>>;

/// The handle of the batching task.
#[derive(Clone)]
pub struct HeartbeatBatcher {
    sender: tokio::sync::mpsc::Sender<(Heartbeat, Reply)>,
}

impl HeartbeatBatcher {
    /// Starts the batching task on the current runtime.
    pub fn start(store: Store) -> HeartbeatBatcher {
        let (sender, mut receiver) =
            tokio::sync::mpsc::channel::<(Heartbeat, Reply)>(16 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let beats: Vec<_> = batch.iter().map(|(b, _)| b.clone()).collect();
                let now = patchwarden_model::now_rfc3339();
                match store.heartbeats(&beats, &now).await {
                    Ok(results) => {
                        for ((_, reply), result) in batch.into_iter().zip(results) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for (_, reply) in batch {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        HeartbeatBatcher { sender }
    }

    /// Stores a heartbeat with the next batch (503 when the store or the task failed).
    pub async fn store(&self, beat: Heartbeat) -> Answer<HeartbeatOutcome> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || ApiError::Unavailable("store: the heartbeat batcher stopped".into());
        self.sender
            .send((beat, reply))
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| ApiError::Unavailable(format!("store: {e}")))
    }
}

//! Group commit: appends that arrive while a commit is in flight share the
//! next transaction, so 64 concurrent appends cost a few commits, not 64.
//!
//! A bad append never fails its neighbours: everything checkable is checked
//! before queueing, conflicts are decided per unit while sealing, and if a
//! shared transaction still aborts (quota, a storage fault) its units are
//! retried one by one so only the one that cannot be written fails.

use super::append::commit_units;
use super::store::IdbStore;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::seal::Unit;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Most units in one shared transaction.
const MAX_UNITS: usize = 256;
/// Most payload bytes in one shared transaction.
const MAX_BYTES: usize = 4 * 1024 * 1024;

type Reply = oneshot::Sender<Result<Vec<Record>>>;

/// The queue of units waiting for a commit.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: RefCell<Vec<(Unit, Reply)>>,
    running: Cell<bool>,
}

impl IdbStore {
    /// Appends one unit (an `append` or an `appendBatch`) and resolves once
    /// it is durable.
    pub(crate) async fn append_unit(self: &Rc<Self>, unit: Unit) -> Result<Vec<Record>> {
        self.db()?;
        let (reply, answer) = oneshot::channel();
        self.group.queue.borrow_mut().push((unit, reply));
        if !self.group.running.replace(true) {
            wasm_bindgen_futures::spawn_local(drain(self.clone()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::internal(
                "an append was dropped before it was committed",
            ))
        })
    }
}

/// Commits queued units until the queue is empty.
async fn drain(store: Rc<IdbStore>) {
    loop {
        let group = take_group(&store.group);
        if group.is_empty() {
            store.group.running.set(false);
            return;
        }
        let (units, replies): (Vec<Unit>, Vec<Reply>) = group.into_iter().unzip();
        match commit_units(&store, &units).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) if units.len() == 1 => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                // The shared transaction aborted as a whole: isolate the
                // unit that caused it.
                for (unit, reply) in units.into_iter().zip(replies) {
                    let result = match commit_units(&store, std::slice::from_ref(&unit)).await {
                        Ok(mut results) => results
                            .pop()
                            .unwrap_or_else(|| Err(Error::internal("no result"))),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }
}

fn take_group(group: &GroupCommit) -> Vec<(Unit, Reply)> {
    let mut queue = group.queue.borrow_mut();
    let mut bytes = 0;
    let mut count = 0;
    for (unit, _) in queue.iter() {
        let size: usize = unit.iter().map(|d| d.payload.as_str().len()).sum();
        if count > 0 && (count == MAX_UNITS || bytes + size > MAX_BYTES) {
            break;
        }
        bytes += size;
        count += 1;
    }
    queue.drain(..count).collect()
}

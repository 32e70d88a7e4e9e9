//! The site event bus that camera changes, status changes, the media plane, inference and intrusion
//! detection publish to. An event of a change in the database is written into the history in that
//! change's transaction and then announced; any other goes to the history's recorder, which stores
//! it. Either way in-process followers of the live stream (the inference router) hear of it, and
//! watchers read the history. A leaf: it knows only the events themselves.
use crate::domain::event::SiteEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, broadcast, mpsc};

/// Events kept for in-process followers that are behind.
const CAPACITY: usize = 1024;
/// Events waiting for the recorder (a database outage); past that they are dropped and counted.
const RECORDER_BACKLOG: usize = 8192;

/// The bus every publisher sends to.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<SiteEvent>>,
    history: mpsc::Sender<Arc<SiteEvent>>,
    /// The recorder's end, until it takes it.
    recorder: Arc<Mutex<Option<mpsc::Receiver<Arc<SiteEvent>>>>>,
    dropped: Arc<AtomicU64>,
    /// Wakes the linker for events stored in their change's transaction.
    stored: Arc<Notify>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (history, recorder) = mpsc::channel(RECORDER_BACKLOG);
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
            history,
            recorder: Arc::new(Mutex::new(Some(recorder))),
            dropped: Arc::default(),
            stored: Arc::default(),
        }
    }
}

impl EventBus {
    /// Publishes `event`: to the history and to every live follower. Never waits.
    pub fn publish(&self, event: SiteEvent) {
        let event = Arc::new(event);
        if self.history.try_send(event.clone()).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "events could not be stored: the database is behind or unreachable");
            }
        }
        let _ = self.tx.send(event);
    }

    /// Announces `event`, already written into the history's inbox in the transaction of its change:
    /// to every live follower, and to the linker, which links it now.
    pub fn announce_stored(&self, event: SiteEvent) {
        self.stored.notify_one();
        let _ = self.tx.send(Arc::new(event));
    }

    /// Signalled when events were written into the history's inbox in their change's transaction.
    pub fn stored(&self) -> Arc<Notify> {
        self.stored.clone()
    }

    /// Events from now on, for an in-process follower.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SiteEvent>> {
        self.tx.subscribe()
    }

    /// The recorder's end of the history channel: once, for the one recorder.
    pub fn take_recorder(&self) -> Option<mpsc::Receiver<Arc<SiteEvent>>> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Events that could not be queued for storing since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

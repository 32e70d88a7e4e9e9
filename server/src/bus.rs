//! The site event bus: one bounded broadcast that camera changes, status changes, the media plane,
//! inference and intrusion detection publish to. A leaf: it knows only the events themselves.
use crate::domain::event::SiteEvent;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events kept for watchers that are behind; beyond that they are told they lagged.
const CAPACITY: usize = 1024;

/// The broadcast every publisher sends to.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<SiteEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl EventBus {
    /// Publishes `event` to every watcher (none listening is fine).
    pub fn publish(&self, event: SiteEvent) {
        let _ = self.tx.send(Arc::new(event));
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SiteEvent>> {
        self.tx.subscribe()
    }
}

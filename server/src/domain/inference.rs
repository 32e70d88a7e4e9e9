//! AI adapters as the rest of the server speaks of them: their health. Plain data.

/// Health of an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet.
    Unknown,
    Healthy,
    /// Answering, but its circuit is half-open.
    Degraded,
    /// Its health check fails, or its circuit is open.
    Unhealthy,
    Disabled,
}

impl Health {
    /// Name, as events and logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Disabled => "disabled",
        }
    }
}

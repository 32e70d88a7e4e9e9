//! OpenNVR server library: configuration, the layered application (api → app → store/security → domain)
//! and the process that serves it.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod app;
pub mod audit;
pub mod bus;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod inference;
pub mod intrusion;
pub mod media;
pub mod metrics;
pub mod postgres;
pub mod process;
pub mod security;
pub mod server;
pub mod store;

pub use config::Config;
pub use error::{Error, ErrorKind};

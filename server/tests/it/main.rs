//! Integration tests: the real server on a real PostgreSQL, called through the SDK as users do.
//! One test binary for the crate (every extra binary is another link).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod api_keys;
mod architecture;
mod audit;
mod auth;
mod boot;
mod cameras;
mod dashboard;
mod embedded;
mod events;
mod harness;
mod http;
mod ids;
mod inference;
mod keys;
mod lifecycle;
mod limits;
mod listings;
mod media;
mod mfa;
mod motion;
mod permissions;
mod recordings;
mod routing;
mod rtsp;
mod sdk;

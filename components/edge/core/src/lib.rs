//! Edge logic for dub-edge, independent of Spin and wasmtime.
//!
//! The edge component (`components/edge`) is thin glue around this crate: it supplies an
//! [`http::HttpClient`] (WASI outgoing HTTP), a [`media::MediaEngine`] (the `dub:media` imports)
//! and configuration from Spin variables, then calls [`router::handle`].
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod error;
pub mod hls;
pub mod http;
pub mod kv;
pub mod media;
pub mod pipeline;
pub mod providers;
pub mod refs;
pub mod resilience;
pub mod router;
pub mod sentences;
#[cfg(test)]
mod testutil;

pub use error::{Error, Result};

//! The talea SDK: [`TaleaClient`] implements [`LedgerApi`] over HTTP.
//!
//! Code written against [`LedgerApi`] runs unchanged against the in-process
//! `LedgerService` or against a remote talead through this client: the same
//! DTOs go in and out, and every refusal comes back as the same [`ApiError`]
//! (rebuilt from the response with `ApiError::from_body`).
//!
//! The client retries what the contract says is safe to retry (408, 429,
//! 503, and failures to get any answer), resending the exact same bytes:
//! every post carries an idempotency key, so a retried post that had in fact
//! committed is answered with the original commit (`deduplicated: true`),
//! never applied twice. See [`RetryPolicy`] and `docs/sdk.md`.
//!
//! The crate also ships the `talea` command-line tool (`src/bin/talea.rs`).

mod client;
mod path;
mod retry;
mod stream;

pub use client::{BuildError, TaleaClient, TaleaClientBuilder, WRITTEN_BOOKS_MAX};
pub use retry::{RetryNotice, RetryPolicy, RetryReason};
pub use stream::{SSE_LINE_BYTES_MAX, StreamEvent, StreamItem};
/// The wire types and the trait, re-exported so one dependency is enough.
pub use talea_api;
pub use talea_api::{ApiError, LedgerApi};

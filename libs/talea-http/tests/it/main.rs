//! Integration tests of the HTTP API against a real Postgres, over real sockets.

mod admission;
mod auth;
mod batch;
mod caps;
mod contract;
mod fields;
mod freshness;
mod harness;
mod holds;
mod instances;
mod liabilities;
mod openapi;
mod proofs;
mod stream;
mod tickets;

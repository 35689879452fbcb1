//! Integration tests of the HTTP API against a real Postgres, over real sockets.

mod admission;
mod contract;
mod harness;
mod instances;

//! talea-verify's integration tests: the documents `talea verify` reads, the
//! proof-of-solvency pitfalls, arbitrary input, the worked example of
//! docs/proofs.md and the crate's dependency rule.

mod deps;
mod docs;
mod example;
mod files;
mod fuzz;
mod pitfalls;

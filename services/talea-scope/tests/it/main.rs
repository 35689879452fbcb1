//! The real `talea-scope` binary: start-up refusals, the introspection
//! contract, and a talead router deciding through it while it is killed and
//! restarted.

mod outage;
mod service;
mod support;

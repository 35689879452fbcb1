//! Integration tests of the SDK and the `talea` CLI, against real talead
//! routers over fresh Postgres databases and against scripted servers.

mod cli;
mod restart;
mod retry;
mod scenarios;
mod support;

//! Integration tests of the SDK and the `talea` CLI, against real talead
//! routers over fresh Postgres databases and against scripted servers, and
//! of `talea verify` against files.

mod cli;
mod import;
mod restart;
mod retry;
mod scenarios;
mod support;
mod verify;

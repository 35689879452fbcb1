//! Rebuilds the crate when a SQLite migration changes: `sqlx::migrate!` embeds
//! the files at compile time, and cargo would not otherwise notice an edit.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
}

//! The backend-agnostic conformance suite, one test per case, each on its own database.

talea_store::conformance_tests!(crate::fresh_store);

//! The token-scope client against a mock service (wiremock): caching, single-flight,
//! slow, failing and flapping services, with TTLs on a paused clock.

mod scope_client;

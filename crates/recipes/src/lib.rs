//! Coordination recipes on corral-client.

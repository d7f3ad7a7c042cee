//! Outgoing channels: how Rapport reaches systems and people outside itself. Each one takes a
//! request the engine has already committed to its outbox and reports whether it went out,
//! failed for now (retry later) or failed for good.

pub mod email;
pub mod messaging;
pub mod template;
pub mod token;
pub mod webhook;

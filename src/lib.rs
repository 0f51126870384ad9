//! Mediator: a self-hosted SIP B2BUA for number masking (bindings) and
//! click-to-call (dialouts), provisioned through the Mediator REST API.
//!
//! Layout (see `docs/architecture.md`): `config` reads the TOML contract,
//! `model` holds the API's types and rules, `store` persists them on SQLite
//! or PostgreSQL, `api` serves `/mediator/v1`; `sip` wraps rsipstack,
//! `media` anchors RTP, `call` is call control, `routing` connects call
//! control to the store; `scheduler` runs housekeeping, `server` wires them
//! together, `cli` is the command line; `hostile` gathers the code a packet
//! reaches, for the fuzz targets and their corpus test (`fuzz/`).

pub mod api;
pub mod call;
pub mod callbacks;
pub mod cli;
pub mod config;
pub mod hostile;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod model;
pub mod routing;
pub mod scheduler;
pub mod server;
pub mod sip;
pub mod store;

//! What mcpod and its in-container supervisor share: the protocol spoken on
//! the session's one stream ([`protocol`]) and the multiplexer that carries
//! it ([`mux`]).

pub mod handoff;
pub mod mux;
pub mod protocol;
pub mod seccomp;

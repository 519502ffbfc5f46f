//! What mcpod and its in-container supervisor share: the protocol spoken on
//! the session's one stream ([`protocol`]), the multiplexer that carries it
//! ([`mux`]), the hand-off socket that carries egress sockets out and in
//! ([`handoff`]), and the `connect` filter the servers run under
//! ([`seccomp`]).

pub mod handoff;
pub mod mux;
pub mod protocol;
pub mod seccomp;

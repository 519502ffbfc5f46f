//! Child MCP connections and what passes through them: tool names, calls,
//! progress and cancellation. Knows MCP; knows podman only through the engine.

pub mod child;
pub mod log;
pub mod names;
pub mod tools;

pub use child::{Child, ProgressSink, StartSpec, Status};

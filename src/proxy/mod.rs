//! Child MCP connections and what passes through them: tool names, calls,
//! progress and cancellation. Knows MCP, and neither podman nor where a server runs.

pub mod child;
pub mod log;
pub mod names;
pub mod tools;

pub use child::{Child, NotStarted, ProgressSink, ServerIo, StartSpec, Status};

//! Child MCP connections and what passes through them: tools, prompts,
//! resources and their names, calls, progress and cancellation, and the
//! children's own requests to the agent. Knows MCP, and neither podman nor
//! where a server runs.

pub mod catalog;
pub mod child;
mod child_task;
pub mod fast;
mod listen;
pub mod log;
mod missing;
pub mod names;
mod read_only;
mod rounds;
pub mod tools;
pub mod upstream;

pub use child::{Child, NotStarted, ProgressSink, Relay, ServerIo, StartSpec, Status};

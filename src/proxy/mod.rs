//! Child MCP connections and what passes through them: tools, prompts,
//! resources and their names, calls, progress and cancellation, and the
//! children's own requests to the agent. Knows MCP, and neither podman nor
//! where a server runs.

mod answers;
pub mod catalog;
pub mod child;
mod child_task;
pub mod fast;
pub mod names;
pub mod search;
pub mod tools;
pub mod upstream;

pub use child::{
    Change, Changes, Child, NotStarted, ProgressSink, Relay, ServerIo, StartSpec, Status,
};

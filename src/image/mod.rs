//! Images: build_image behind the content-addressed cache, and inspect_labels.

pub mod build;
pub mod containerfile;
pub mod gc;
pub mod inspect;
pub mod isolation;
pub mod leftovers;
pub mod probe;
pub mod reference;
pub mod steps;
pub mod store;
pub mod supervised;
pub mod travel;

pub use build::{BuildSpec, Built, Progress, build_image};
pub use inspect::{Inspected, inspect_labels};

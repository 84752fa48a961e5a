//! One module per command.

pub mod bench;
pub mod features;
pub mod info;

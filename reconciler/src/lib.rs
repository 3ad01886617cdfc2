//! faaso reconciler.
#![forbid(unsafe_code)]

//! Load on the local runtime (written next).

//! Home of the cross-crate test suites (see `handlers/`); no library code.

//! relaychat's local runtime. So far: the API Gateway `@connections` management API emulator.

pub mod connections;

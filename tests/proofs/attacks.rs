//! Attacks on the WebSocket front (written next).

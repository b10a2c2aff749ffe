//! What one host must not be able to do to a school: hold the server's connections or
//! descriptors, pin its memory through the login, or flood a signaling connection.

mod connections;

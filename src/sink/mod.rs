//! Sink: placeholder, being written.

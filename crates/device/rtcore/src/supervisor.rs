//! Supervision shared by the backends.

//! ferro-pki (work in progress).

//! atoll's host tools.

//! Test fixtures. Being implemented.

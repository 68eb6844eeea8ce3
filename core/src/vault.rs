//! The secret vault.

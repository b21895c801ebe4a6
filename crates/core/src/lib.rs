//! Hyper-V saved state reader and kernel dump writer.


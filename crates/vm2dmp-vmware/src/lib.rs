//! VMware suspended (`.vmss`) and snapshot (`.vmsn`) state with its `.vmem` as a
//! [`MemorySource`](vm2dmp_source::MemorySource).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

//! winsim: simulated Windows fleet.

//! `ferry-sim`: simulated nodes for ferry (being written).

//! `ferry-controllers`: the controllers of kube-controller-manager for ferry (being written).

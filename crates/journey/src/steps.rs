//! The steps of a pod's journey, in the order seed 000 tells it, with who takes each. A
//! component names its spans with these words (`step!("bound", …)`), and `ferry trace`
//! orders and groups by them; a step not listed here still shows, by its start time.

/// Seed 004's nine steps, each with the component that takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// 1. kubectl sends the request; the API server authenticates and authorizes it.
    Request,
    /// 2. Admission and validation.
    Admission,
    /// 3. Persisted in the store (etcd).
    Persisted,
    /// 4. A controller creates the pod (Deployment → ReplicaSet → Pod).
    Controller,
    /// 5. The scheduler picks a node.
    Scheduler,
    /// 6. The kubelet sees the pod bound to its node.
    Kubelet,
    /// 7. The container runtime: sandbox, network, images, containers.
    Runtime,
    /// 8. Probes pass and the pod is Ready.
    Ready,
    /// 9. The pod receives traffic: EndpointSlices and the proxy's rules.
    Traffic,
}

/// Every step ferry's components record, with its stage. The names are what the spans are
/// called.
pub const STEPS: &[(&str, Stage)] = &[
    // kube-apiserver, for every traced write (creates and spec changes of pods and the
    // workloads that make them, bindings and scale changes).
    ("request", Stage::Request),
    ("authenticated", Stage::Request),
    ("priority and fairness", Stage::Request),
    ("authorized", Stage::Request),
    ("decoded", Stage::Admission),
    ("mutating admission", Stage::Admission),
    ("admission plugin", Stage::Admission),
    ("validation", Stage::Admission),
    ("validating admission", Stage::Admission),
    ("persisted", Stage::Persisted),
    // Controllers (kube-controller-manager).
    ("created replicaset", Stage::Controller),
    ("scaled replicaset", Stage::Controller),
    ("created pod", Stage::Controller),
    // kube-scheduler.
    ("queued", Stage::Scheduler),
    ("filtered", Stage::Scheduler),
    ("scored", Stage::Scheduler),
    ("unschedulable", Stage::Scheduler),
    ("bound", Stage::Scheduler),
    // kubelet and, through CRI, the container runtime.
    ("pod seen", Stage::Kubelet),
    ("volumes mounted", Stage::Kubelet),
    ("sandbox created", Stage::Runtime),
    ("image pulled", Stage::Runtime),
    ("init container completed", Stage::Runtime),
    ("container started", Stage::Runtime),
    ("container exited", Stage::Runtime),
    ("startup probe passed", Stage::Ready),
    ("readiness probe passed", Stage::Ready),
    ("ready", Stage::Ready),
    // Traffic.
    ("added to endpointslice", Stage::Traffic),
    ("proxy rules programmed", Stage::Traffic),
];

/// The stage of a step by its name.
pub fn stage(step: &str) -> Option<Stage> {
    STEPS
        .iter()
        .find(|(name, _)| *name == step)
        .map(|(_, stage)| *stage)
}

#[cfg(test)]
mod tests {
    #[test]
    fn step_names_are_unique_and_stages_never_go_back() {
        let mut names = std::collections::HashSet::new();
        let mut last = super::Stage::Request;
        for (name, stage) in super::STEPS {
            assert!(names.insert(*name), "{name} twice");
            assert!(*stage >= last, "{name} goes back a stage");
            last = *stage;
        }
    }
}

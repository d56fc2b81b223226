use super::*;

fn sandbox(id: &str, uid: &str, name: &str, ready: bool, created_at: i64) -> v1::PodSandbox {
    v1::PodSandbox {
        id: id.into(),
        metadata: Some(v1::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        state: if ready {
            v1::PodSandboxState::SandboxReady
        } else {
            v1::PodSandboxState::SandboxNotready
        } as i32,
        created_at,
        ..Default::default()
    }
}

fn container(id: &str, sandbox: &str, name: &str, running: bool) -> v1::Container {
    v1::Container {
        id: id.into(),
        pod_sandbox_id: sandbox.into(),
        metadata: Some(v1::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        state: if running {
            v1::ContainerState::ContainerRunning
        } else {
            v1::ContainerState::ContainerExited
        } as i32,
        created_at: 1_700_000_000_000_000_000,
        ..Default::default()
    }
}

fn stats(id: &str, working_set: u64, rootfs: u64) -> v1::ContainerStats {
    let v = |value| Some(v1::UInt64Value { value });
    v1::ContainerStats {
        attributes: Some(v1::ContainerAttributes {
            id: id.into(),
            ..Default::default()
        }),
        cpu: Some(v1::CpuUsage {
            timestamp: 1_700_000_010_000_000_000,
            usage_core_nano_seconds: v(5_000),
            ..Default::default()
        }),
        memory: Some(v1::MemoryUsage {
            timestamp: 1_700_000_010_000_000_000,
            working_set_bytes: v(working_set),
            rss_bytes: v(working_set / 2),
            ..Default::default()
        }),
        writable_layer: Some(v1::FilesystemUsage {
            used_bytes: v(rootfs),
            inodes_used: v(3),
            ..Default::default()
        }),
        swap: None,
    }
}

fn fs(capacity: u64, available: u64) -> FsStats {
    FsStats {
        time: "t".into(),
        capacity_bytes: Some(capacity),
        available_bytes: Some(available),
        inodes: Some(1000),
        inodes_free: Some(900),
        ..Default::default()
    }
}

#[test]
fn pods_join_running_containers_volumes_and_logs_into_ephemeral_storage() {
    let listing = Listing {
        sandboxes: vec![
            sandbox("s-old", "u1", "web", false, 1),
            sandbox("s1", "u1", "web", true, 2),
            sandbox("s2", "u2", "db", true, 3),
        ],
        containers: vec![
            container("c1", "s1", "app", true),
            container("c-dead", "s1", "app", false),
            container("c2", "s2", "db", true),
        ],
        container_stats: vec![stats("c1", 80 << 20, 4096), stats("c2", 10 << 20, 0)],
        sandbox_stats: vec![],
        // The host's view of s1, as a runtime without sandbox stats leaves it to the kubelet.
        host: HashMap::from([(
            "s1".to_string(),
            super::sandbox::HostView {
                network: Some(NetworkStats {
                    time: "t".into(),
                    default: super::summary::InterfaceStats {
                        name: "eth0".into(),
                        rx_bytes: Some(1500),
                        ..Default::default()
                    },
                    interfaces: vec![],
                }),
                process_count: Some(3),
            },
        )]),
    };
    let mut disk = HashMap::new();
    disk.insert(
        "u1".to_string(),
        PodDisk {
            volumes: vec![
                ("kubernetes.io~empty-dir".into(), "cache".into(), 1000, 2),
                ("kubernetes.io~secret".into(), "token".into(), 50, 1),
            ],
            logs: HashMap::from([("app".to_string(), (200, 1))]),
        },
    );
    let pods = build_pods(
        &listing,
        &disk,
        &fs(1 << 30, 1 << 29),
        &fs(1 << 31, 1 << 30),
        0,
    );
    assert_eq!(pods.len(), 2);
    let web = &pods[0];
    assert_eq!(web.pod_ref.uid, "u1");
    assert_eq!(web.containers.len(), 1, "the exited instance is left out");
    let app = &web.containers[0];
    assert_eq!(
        app.memory.as_ref().and_then(|m| m.working_set_bytes),
        Some(80 << 20)
    );
    assert_eq!(app.rootfs.as_ref().and_then(|f| f.used_bytes), Some(4096));
    assert_eq!(
        app.rootfs.as_ref().and_then(|f| f.capacity_bytes),
        Some(1 << 31)
    );
    assert_eq!(app.logs.as_ref().and_then(|f| f.used_bytes), Some(200));
    assert_eq!(web.volume.len(), 2);
    // rootfs + logs + the emptyDir (a secret is tmpfs, not the node's disk).
    let eph = web.ephemeral_storage.as_ref().expect("ephemeral storage");
    assert_eq!(eph.used_bytes, Some(4096 + 200 + 1000));
    assert_eq!(eph.inodes_used, Some(3 + 1 + 2));
    assert_eq!(web.memory_working_set(), Some(80 << 20));
    let network = web.network.as_ref().expect("the host's network figures");
    assert_eq!(network.default.rx_bytes, Some(1500));
    assert_eq!(
        web.process_stats.as_ref().and_then(|p| p.process_count),
        Some(3)
    );
    assert!(pods[1].network.is_none(), "no view of s2");
    assert_eq!(
        web.memory.as_ref().and_then(|m| m.working_set_bytes),
        Some(80 << 20),
        "summed from the containers without sandbox stats"
    );
    assert_eq!(pods[1].pod_ref.name, "db");
}

#[test]
fn summary_json_has_upstreams_field_names() {
    let pods = build_pods(
        &Listing {
            sandboxes: vec![sandbox("s1", "u1", "web", true, 2)],
            containers: vec![container("c1", "s1", "app", true)],
            container_stats: vec![stats("c1", 1, 1)],
            ..Default::default()
        },
        &HashMap::new(),
        &fs(10, 5),
        &fs(10, 5),
        0,
    );
    let summary = Summary {
        node: summary::NodeStats {
            node_name: "n1".into(),
            rlimit: Some(RlimitStats {
                time: "t".into(),
                maxpid: Some(10),
                curproc: Some(2),
            }),
            runtime: Some(RuntimeStats {
                image_fs: Some(fs(10, 5)),
                container_fs: None,
            }),
            ..Default::default()
        },
        pods,
    };
    let json = serde_json::to_value(&summary).expect("json");
    assert_eq!(json["node"]["nodeName"], "n1");
    assert_eq!(json["node"]["rlimit"]["maxpid"], 10);
    assert_eq!(json["node"]["runtime"]["imageFs"]["capacityBytes"], 10);
    let pod = &json["pods"][0];
    assert_eq!(pod["podRef"]["uid"], "u1");
    assert_eq!(pod["containers"][0]["memory"]["workingSetBytes"], 1);
    assert_eq!(pod["containers"][0]["memory"]["rssBytes"], 0);
    assert!(pod["ephemeral-storage"]["usedBytes"].is_u64());
    assert!(pod["containers"][0]["rootfs"]["inodesUsed"].is_u64());
    let back: Summary = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, summary);
}

#[test]
fn cpu_rates_come_from_the_previous_reading() {
    let mut cache = HashMap::new();
    let at = |secs: i64, total: u64| Summary {
        node: summary::NodeStats {
            cpu: Some(CpuStats {
                time: rfc3339(secs * 1_000_000_000),
                usage_nano_cores: None,
                usage_core_nano_seconds: Some(total),
            }),
            ..Default::default()
        },
        pods: vec![],
    };
    let mut first = at(100, 1_000_000_000);
    fill_cpu_rates(&mut first, &mut cache);
    assert_eq!(
        first.node.cpu.as_ref().and_then(|c| c.usage_nano_cores),
        None
    );
    let mut second = at(110, 6_000_000_000);
    fill_cpu_rates(&mut second, &mut cache);
    // 5 s of CPU in 10 s: half a core.
    assert_eq!(
        second.node.cpu.as_ref().and_then(|c| c.usage_nano_cores),
        Some(500_000_000)
    );
}

#[tokio::test]
async fn the_provider_reads_a_fake_runtime_and_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    for (path, content) in [
        ("proc/stat", "cpu  100 0 100 1000 0 0 0 0 0 0\nbtime 1700000000\n"),
        (
            "proc/meminfo",
            "MemTotal: 4000000 kB\nMemFree: 1000000 kB\nMemAvailable: 2000000 kB\nInactive(file): 500000 kB\nAnonPages: 100 kB\n",
        ),
        ("proc/loadavg", "0.1 0.2 0.3 2/300 123\n"),
        ("proc/sys/kernel/pid_max", "4096\n"),
        ("proc/self/mountinfo", ""),
        ("proc/self/cgroup", ""),
        ("proc/self/stat", "1 (ferry) S 0 0 0 0 0 0 0 0 0 0 10 10 0 0 0 0 0 0 50 0 0\n"),
        ("proc/self/status", "VmRSS: 1000 kB\n"),
        ("proc/net/dev", "h\nh\n  eth0: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n"),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let runtime = Arc::new(crate::runtime::FakeRuntime::new());
    let provider = StatsProvider::new(
        StatsConfig {
            node_name: "n1".into(),
            machine: MachineConfig {
                root: root.clone(),
                data_dir: data.clone(),
                ..MachineConfig::default()
            },
            pods_dir: data.join("pods"),
            pod_logs_root: data.join("logs"),
            runtime_pid: None,
        },
        runtime,
    );
    let summary = provider.summary().await.expect("summary");
    assert_eq!(summary.node.node_name, "n1");
    let memory = summary.node.memory.expect("memory");
    // Capacity 4000000 kB, working set = total - free - inactive(file) = 2500000 kB.
    assert_eq!(memory.working_set_bytes, Some(2_500_000 * 1024));
    assert_eq!(memory.available_bytes, Some(1_500_000 * 1024));
    assert_eq!(summary.node.rlimit.expect("rlimit").curproc, Some(300));
    assert_eq!(summary.node.network.expect("network").default.name, "eth0");
    let names: Vec<_> = summary
        .node
        .system_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["kubelet", "pods"]);
    assert!(summary.node.fs.expect("fs").capacity_bytes.is_some());
}

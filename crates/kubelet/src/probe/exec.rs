//! Exec probes (upstream `pkg/probe/exec`): the command run in the container through the
//! runtime's `ExecSync`, passing on exit code 0; its output (stdout, then stderr, at most
//! [`MAX_OUTPUT`] bytes) is the failure message.

use std::time::Duration;

use k8s_openapi::api::core::v1::ExecAction;

use super::{ProbeResult, ProbeTarget, MAX_OUTPUT};

pub(super) async fn exec_probe(
    exec: &ExecAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    // Upstream's ExpandContainerCommandOnlyStatic: only literal env values; a variable set
    // from a source expands to "".
    let env = target.container.env.as_deref().unwrap_or_default();
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|var| var.name == name)
            .map(|var| var.value.clone().unwrap_or_default())
    };
    let cmd: Vec<String> = exec
        .command
        .iter()
        .flatten()
        .map(|arg| crate::podconfig::expand(arg, &lookup))
        .collect();
    let joined = cmd.join(" ");
    match target
        .runtime
        .exec_sync(target.container_id, cmd, timeout)
        .await
    {
        Ok(result) => {
            // kuberuntime's RunInContainer: stdout, then stderr.
            let mut output = result.stdout;
            output.extend_from_slice(&result.stderr);
            output.truncate(MAX_OUTPUT);
            let output = String::from_utf8_lossy(&output).into_owned();
            if result.exit_code == 0 {
                ProbeResult::Success
            } else {
                ProbeResult::Failure(output)
            }
        }
        Err(e) if e.is_deadline_exceeded() => {
            ProbeResult::Failure(format!("command {joined:?} timed out"))
        }
        Err(e) => ProbeResult::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::probe::testing::*;
    use crate::probe::{probe_once, ProbeResult, MAX_OUTPUT};
    use crate::runtime::{ExecSyncResult, FakeRuntime, RuntimeError};

    #[tokio::test(start_paused = true)]
    async fn exec_probe() {
        let fake = FakeRuntime::new();
        let id = running(&fake, "app").await;
        let c = container(json!({"name": "app", "env": [
            {"name": "FILE", "value": "/tmp/healthy"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
        ]}));
        let spec = probe(json!({"exec": {"command": ["cat", "$(FILE)", "$(SECRET)", "$(OTHER)"]}}));
        let t = target(&fake, &id, &c);

        assert_eq!(probe_once(&spec, &t).await, ProbeResult::Success);
        assert_eq!(
            exec_calls(&fake),
            vec![(
                id.clone(),
                vec![
                    "cat".into(),
                    "/tmp/healthy".into(),
                    "".into(),
                    "$(OTHER)".into()
                ]
            )]
        );

        fake.push_exec_result(
            &id,
            Ok(ExecSyncResult {
                exit_code: 1,
                stdout: b"out ".to_vec(),
                stderr: b"cat: can't open".to_vec(),
            }),
        );
        assert_eq!(
            probe_once(&spec, &t).await,
            ProbeResult::Failure("out cat: can't open".into())
        );
        fake.push_exec_result(
            &id,
            Ok(ExecSyncResult {
                exit_code: 2,
                stdout: vec![b'x'; 3 * MAX_OUTPUT],
                stderr: vec![],
            }),
        );
        match probe_once(&spec, &t).await {
            ProbeResult::Failure(output) => assert_eq!(output.len(), MAX_OUTPUT),
            other => panic!("{other:?}"),
        }

        // A command outliving timeoutSeconds.
        fake.set_exec_delay(&id, Duration::from_secs(5));
        let slow = probe(json!({"exec": {"command": ["sleep", "5"]}, "timeoutSeconds": 2}));
        let start = tokio::time::Instant::now();
        assert_eq!(
            probe_once(&slow, &t).await,
            ProbeResult::Failure("command \"sleep 5\" timed out".into())
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // The runtime failing is not a probe failure.
        fake.push_exec_result(&id, Err(RuntimeError::Unavailable("down".into())));
        fake.set_exec_delay(&id, Duration::ZERO);
        assert_eq!(
            probe_once(&spec, &t).await,
            ProbeResult::Unknown("runtime unavailable: down".into())
        );
        let gone = target(&fake, "gone", &c);
        assert!(matches!(
            probe_once(&spec, &gone).await,
            ProbeResult::Unknown(_)
        ));
        assert!(matches!(
            probe_once(&probe(json!({})), &t).await,
            ProbeResult::Unknown(_)
        ));
    }
}

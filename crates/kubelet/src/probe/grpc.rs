//! gRPC probes (upstream `pkg/probe/grpc`): one `grpc.health.v1.Health/Check` call on the pod's
//! IP, passing when the service answers `SERVING`. The two health messages are encoded by hand.

use std::time::Duration;

use bytes::{Buf, BufMut};
use k8s_openapi::api::core::v1::GRPCAction;

use super::tcp::join_host_port;
use super::{PortError, ProbeResult, ProbeTarget, USER_AGENT};

/// A codec for messages we encode by hand: the health check's are one field each.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// `grpc.health.v1.HealthCheckRequest { service }` in protobuf wire format.
fn health_check_request(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        out.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// Why a `grpc.health.v1.HealthCheckResponse` does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum ResponseError {
    /// The message ends inside a field.
    #[error("truncated health response")]
    Truncated,
    /// A varint longer than 64 bits.
    #[error("bad varint in health response")]
    BadVarint,
    /// A wire type protobuf does not define (or the deprecated groups).
    #[error("bad wire type in health response")]
    BadWireType(u64),
    /// A length that does not fit in memory.
    #[error(transparent)]
    Length(#[from] std::num::TryFromIntError),
}

/// The `status` (field 1, an enum) of a `grpc.health.v1.HealthCheckResponse`; 0 (UNKNOWN)
/// when absent. Other fields are skipped.
fn health_check_status(mut msg: &[u8]) -> Result<u64, ResponseError> {
    fn varint(msg: &mut &[u8]) -> Result<u64, ResponseError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = msg.split_first().ok_or(ResponseError::Truncated)?;
            *msg = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ResponseError::BadVarint)
    }
    let mut status = 0;
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match key & 7 {
            0 => {
                let value = varint(&mut msg)?;
                if key >> 3 == 1 {
                    status = value;
                }
            }
            1 => msg = msg.get(8..).ok_or(ResponseError::Truncated)?,
            2 => {
                let len = usize::try_from(varint(&mut msg)?)?;
                msg = msg.get(len..).ok_or(ResponseError::Truncated)?;
            }
            5 => msg = msg.get(4..).ok_or(ResponseError::Truncated)?,
            wire_type => return Err(ResponseError::BadWireType(wire_type)),
        }
    }
    Ok(status)
}

fn health_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        n => n.to_string(),
    }
}

pub(super) async fn grpc_probe(
    grpc: &GRPCAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let port = match u16::try_from(grpc.port).ok().filter(|p| *p > 0) {
        Some(port) => port,
        None => {
            let invalid = PortError::Invalid {
                number: i64::from(grpc.port),
            };
            return ProbeResult::Unknown(invalid.to_string());
        }
    };
    let service = grpc.service.as_deref().unwrap_or_default();
    let addr = join_host_port(target.pod_ip, port);
    let deadline = tokio::time::Instant::now() + timeout;
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(endpoint) => endpoint,
        Err(e) => return ProbeResult::Unknown(e.to_string()),
    };
    let endpoint = endpoint
        .user_agent(USER_AGENT)
        .map(|e| e.connect_timeout(timeout));
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(e) => return ProbeResult::Unknown(e.to_string()),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => {
            let source = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            return ProbeResult::Failure(format!(
                "error: failed to connect service at {addr:?}: {e}{source}"
            ));
        }
        Err(_) => {
            return ProbeResult::Failure(format!(
                "timeout: failed to connect service {addr:?} within {}: context deadline exceeded",
                ferry_api::duration::format_go(timeout)
            ))
        }
    };
    let mut client = tonic::client::Grpc::new(channel);
    let call = async {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        client
            .unary(
                tonic::Request::new(health_check_request(service)),
                path,
                RawCodec,
            )
            .await
    };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let response = match tokio::time::timeout(left, call).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            return ProbeResult::Failure(format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {}",
                status.message()
            ))
        }
        Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => {
            return ProbeResult::Failure(format!(
                "timeout: health rpc did not complete within {}",
                ferry_api::duration::format_go(timeout)
            ))
        }
        Ok(Err(status)) => {
            return ProbeResult::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            ))
        }
        Err(_) => {
            return ProbeResult::Failure(format!(
                "timeout: health rpc did not complete within {}",
                ferry_api::duration::format_go(timeout)
            ))
        }
    };
    match health_check_status(&response) {
        Ok(1) => ProbeResult::Success,
        Ok(status) => ProbeResult::Failure(format!(
            "service unhealthy (responded with {:?})",
            health_status_name(status)
        )),
        Err(e) => ProbeResult::Failure(format!("error: health rpc probe failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::probe::testing::*;
    use crate::probe::{probe_once, ProbeResult};
    use crate::runtime::FakeRuntime;

    #[test]
    fn grpc_health_messages() {
        assert_eq!(health_check_request(""), Vec::<u8>::new());
        assert_eq!(health_check_request("db"), vec![0x0a, 2, b'd', b'b']);
        let long = "s".repeat(200);
        assert_eq!(&health_check_request(&long)[..3], &[0x0a, 0xc8, 0x01]);
        assert_eq!(health_check_status(&[]), Ok(0));
        assert_eq!(health_check_status(&[0x08, 0x01]), Ok(1));
        // An unknown length-delimited field first, then status NOT_SERVING.
        assert_eq!(health_check_status(&[0x12, 0x01, 0xff, 0x08, 0x02]), Ok(2));
        assert_eq!(health_check_status(&[0x08]), Err(ResponseError::Truncated));
        assert_eq!(
            health_check_status(&[0x0b]),
            Err(ResponseError::BadWireType(3))
        );
        let overlong = health_check_status(&[0xff; 10]).expect_err("a varint over 64 bits");
        assert_eq!(overlong, ResponseError::BadVarint);
        assert_eq!(overlong.to_string(), "bad varint in health response");
    }

    #[tokio::test]
    async fn grpc_probe_without_server_fails() {
        let fake = FakeRuntime::new();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let c = container(json!({"name": "app"}));
        let t = target(&fake, "c", &c);
        match probe_once(&probe(json!({"grpc": {"port": closed}})), &t).await {
            ProbeResult::Failure(message) => assert!(
                message.starts_with(&format!(
                    "error: failed to connect service at \"127.0.0.1:{closed}\""
                )),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }
}

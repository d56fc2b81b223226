//! The W3C trace context (`traceparent`) a step's span carries to the next component: on an
//! HTTP request as the `traceparent` header (what upstream's API server tracing reads), and on
//! an object as the [`ANNOTATION`](crate::ANNOTATION) the API server sets when it persists it.

use std::fmt;

/// A trace id (16 bytes) and the id of one span in it (8 bytes): `00-<trace>-<span>-01`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TraceContext {
    /// The trace: every step of one journey shares it.
    pub trace_id: TraceId,
    /// The span the next step hangs under.
    pub span_id: SpanId,
}

/// A trace's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TraceId(pub u128);

/// A span's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct SpanId(pub u64);

impl TraceId {
    /// A fresh random id (never zero, which the W3C format forbids).
    pub fn random() -> TraceId {
        TraceId(rand::random::<u128>().max(1))
    }

    /// From 32 lowercase or uppercase hex digits.
    pub fn parse(text: &str) -> Option<TraceId> {
        (text.len() == 32)
            .then(|| u128::from_str_radix(text, 16).ok())
            .flatten()
            .filter(|id| *id != 0)
            .map(TraceId)
    }
}

impl SpanId {
    /// A fresh random id (never zero).
    pub fn random() -> SpanId {
        SpanId(rand::random::<u64>().max(1))
    }

    /// From 16 hex digits.
    pub fn parse(text: &str) -> Option<SpanId> {
        (text.len() == 16)
            .then(|| u64::from_str_radix(text, 16).ok())
            .flatten()
            .filter(|id| *id != 0)
            .map(SpanId)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl TraceContext {
    /// Reads a `traceparent` value: version `00` exactly as the W3C defines it, and any later
    /// version by its first four fields (the specification's rule for versions it does not
    /// know). Anything else is `None`: the step then starts a trace of its own.
    pub fn parse(text: &str) -> Option<TraceContext> {
        let text = text.trim();
        let mut parts = text.split('-');
        let version = parts.next()?;
        if version.len() != 2 || version == "ff" || u8::from_str_radix(version, 16).is_err() {
            return None;
        }
        let trace_id = TraceId::parse(parts.next()?)?;
        let span_id = SpanId::parse(parts.next()?)?;
        let flags = parts.next()?;
        if flags.len() != 2 || u8::from_str_radix(flags, 16).is_err() {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        Some(TraceContext { trace_id, span_id })
    }
}

impl fmt::Display for TraceContext {
    /// `00-<trace id>-<span id>-01` (always sampled: ferry keeps every journey).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-01", self.trace_id, self.span_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let context = TraceContext::parse(text).expect("valid");
        assert_eq!(context.trace_id.0, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(context.span_id.0, 0xb7ad6b7169203331);
        assert_eq!(context.to_string(), text);
    }

    #[test]
    fn malformed_traceparents_start_a_trace_of_their_own() {
        for text in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "0x-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-zaf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceContext::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn later_versions_are_read_by_their_first_fields() {
        let text = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-whatever";
        assert!(TraceContext::parse(text).is_some());
    }
}

//! W3C trace context (`traceparent`): minted at the WebSocket and HTTP edges (or continued from an
//! HTTP caller's), carried in every Kafka record's headers, and continued by each consumer with a
//! span of its own whose parent is the producer's. Held in a task-local while an action or a
//! record is handled, so the Kafka producer and the FCM client add it to what they send without
//! every port carrying it.

use std::fmt;

/// The header, as W3C names it (Kafka headers and HTTP alike).
pub const TRACEPARENT: &str = "traceparent";

tokio::task_local! {
    static CURRENT: Trace;
}

/// One span of a trace: its trace, its own id, and its parent's (none for the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub sampled: bool,
}

/// A fresh random id (a ULID's randomness: 80 random bits, with its time in the rest).
fn random() -> u128 {
    ulid::Ulid::new().0
}

impl Trace {
    /// A new trace: a request came in with none.
    pub fn root() -> Self {
        Self {
            trace_id: random(),
            span_id: random() as u64,
            parent_span_id: None,
            sampled: true,
        }
    }

    /// A span of this trace under this one.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: random() as u64,
            parent_span_id: Some(self.span_id),
            sampled: self.sampled,
        }
    }

    /// The `traceparent` a caller sent: version 00, 32 and 16 lower-case hex digits, not all
    /// zero, and the flags. `None` for anything else (the W3C rule: start a new trace).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(())
        };
        hex(version, 2)?;
        hex(trace, 32)?;
        hex(span, 16)?;
        hex(flags, 2)?;
        if version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            parent_span_id: None,
            sampled: flags & 1 == 1,
        })
    }

    /// The span continuing what a record or a request carried (`traceparent` bytes), or a new
    /// trace when it carried none (or an unreadable one).
    pub fn continue_from(header: Option<&[u8]>) -> Self {
        header
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(Self::parse)
            .map_or_else(Self::root, |parent| parent.child())
    }

    /// The trace and span ids as logs show them.
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub fn span_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    pub fn parent_hex(&self) -> Option<String> {
        self.parent_span_id.map(|p| format!("{p:016x}"))
    }
}

/// The `traceparent` of this span: what it sends carries it, so the receiver's span is a child.
impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// Runs `work` in the span `trace`: what it sends carries it.
pub async fn within<F: Future>(trace: Trace, work: F) -> F::Output {
    CURRENT.scope(trace, work).await
}

/// The span this task is in, if any.
pub fn current() -> Option<Trace> {
    CURRENT.try_with(|t| *t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_ones_start_afresh() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = Trace::parse(header).unwrap();
        assert_eq!(t.to_string(), header);
        let child = Trace::continue_from(Some(header.as_bytes()));
        assert_eq!((child.trace_id, child.parent_span_id), (t.trace_id, Some(t.span_id)));
        assert_ne!(child.span_id, t.span_id);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-test",
        ] {
            assert!(Trace::parse(bad).is_none(), "{bad}");
            assert_eq!(Trace::continue_from(Some(bad.as_bytes())).parent_span_id, None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_current_span_is_the_one_work_runs_within() {
        assert!(current().is_none());
        let root = Trace::root();
        let seen = within(root, async { current() }).await;
        assert_eq!(seen, Some(root));
    }
}

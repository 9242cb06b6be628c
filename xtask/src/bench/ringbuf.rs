//! The event pipeline: not measured yet. The bench has no load generator for netpost's
//! ring-buffer events (the drop samples, netpost's first ring buffer, are throttled in the
//! kernel to one per CPU and drop reason per 100 ms, far below any saturation). The key stays
//! in the report (null, with the reason) so its shape does not change when it is measured:
//! then with a producer at rising rates, drained by netpost's own reader, counting loss.
use serde_json::{Value, json};

pub fn metric() -> Value {
    json!({
        "value": null,
        "unit": "events/s",
        "samples": [],
        "loss_curve": [],
        "reason": "not measured yet: the bench has no load generator for netpost's ring-buffer \
                   events (drop samples are throttled in the kernel to one per CPU and drop \
                   reason per 100 ms)",
    })
}

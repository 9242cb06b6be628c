//! The doctor's diagnoses: one gauge per diagnosis id, 1 while it holds, 0 when it does not.
//! Every id is served from the first snapshot on, so an alert can watch a series that exists.
use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::gauge;
use crate::{
    doctor::{IDS, usual_severity},
    model::Snapshot,
};

pub fn encode(enc: &mut DescriptorEncoder, snap: &Snapshot) -> fmt::Result {
    gauge(
        enc,
        "netpost_diagnosis",
        "1 while the doctor's diagnosis holds, 0 when not (id: the JSON's diagnoses[].id; severity: its severity now, or the usual one when it does not hold).",
        None,
        IDS.iter().map(|id| {
            let found = snap.diagnoses.iter().find(|d| d.id == *id);
            let severity = found.map_or(usual_severity(id), |d| d.severity).name();
            (
                [("id", *id), ("severity", severity)],
                found.map_or(0i64, |_| 1),
            )
        }),
    )
}

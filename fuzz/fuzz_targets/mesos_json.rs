//! The Mesos JSON types, and the offer arithmetic the controller runs on what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesos_v1::legacy::{AgentState, MasterState};
use mesos_v1::{Call, Event, FileRead, GetState, OperatorResponse, TaskStatus, resources};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = serde_json::from_slice::<Event>(data) {
        let _ = ev.task_status().map(TaskStatus::needs_ack);
        for o in ev.offer_list() {
            let r = &o.resources;
            let _ = resources::scalar_total(r, "cpus");
            let _ = resources::ranges_len(&resources::ranges_total(r, "ports"));
            let _ = resources::sum(r, r);
            let _ = resources::subtract(r, r);
            let _ = resources::contains(r, r);
        }
    }
    let _ = serde_json::from_slice::<Call>(data);
    let _ = serde_json::from_slice::<TaskStatus>(data);
    let _ = serde_json::from_slice::<OperatorResponse>(data);
    let _ = serde_json::from_slice::<GetState>(data);
    let _ = serde_json::from_slice::<FileRead>(data);
    let _ = serde_json::from_slice::<MasterState>(data);
    let _ = serde_json::from_slice::<AgentState>(data);
});

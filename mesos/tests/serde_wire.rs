//! Wire-shape tests built from the JSON examples of the wire reference
//! (`mesos-v1-http.md`): round trips, exact shapes Mesos expects, defaults Mesos
//! prints, and tolerance for what Mesos accepts.
#![recursion_limit = "256"]

use mesos_v1::*;
use serde_json::{Value, json};

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(v: &Value) -> (T, Value) {
    let parsed: T = serde_json::from_value(v.clone()).expect("parse");
    let back = serde_json::to_value(&parsed).expect("serialise");
    (parsed, back)
}

#[test]
fn subscribe_call_roundtrips_exactly() {
    let doc = json!({"type":"SUBSCRIBE","subscribe":{"framework_info":{
      "user":"concord","name":"concord-controller","roles":["concord"],
      "capabilities":[{"type":"MULTI_ROLE"},{"type":"PARTITION_AWARE"},{"type":"TASK_KILLING_STATE"}],
      "failover_timeout":604800.0,"checkpoint":true,"principal":"concord",
      "hostname":"ctl-1","webui_url":"http://ctl-1:7070/",
      "labels":{"labels":[{"key":"owner","value":"concord"}]}}}});
    let (call, back): (Call, Value) = roundtrip(&doc);
    assert_eq!(back, doc);
    assert_eq!(call.r#type, CallType::Subscribe);
    let fi = &call.subscribe.as_ref().expect("subscribe").framework_info;
    assert!(fi.has_capability(&FrameworkCapabilityType::PartitionAware));
    assert_eq!(fi.failover_timeout, 604800.0);
    assert_eq!(
        fi.labels.as_ref().and_then(|l| l.get("owner")),
        Some("concord")
    );
    assert!(call.has_body_for_type());
}

#[test]
fn resubscribe_sets_both_framework_ids() {
    let mut fi = FrameworkInfo::new("concord", "c");
    fi.id = Some(FrameworkId::new("F-0000"));
    let v = serde_json::to_value(Call::subscribe(fi)).expect("json");
    assert_eq!(v["framework_id"], json!({"value":"F-0000"}));
    assert_eq!(
        v["subscribe"]["framework_info"]["id"],
        json!({"value":"F-0000"})
    );
    // Defaults with a proto [default] are printed, as Mesos prints them.
    assert_eq!(
        v["subscribe"]["framework_info"]["failover_timeout"],
        json!(0.0)
    );
    assert_eq!(v["subscribe"]["framework_info"]["checkpoint"], json!(false));
    assert!(v["subscribe"]["framework_info"].get("role").is_none());
}

#[test]
fn accept_launch_matches_doc_plus_printed_defaults() {
    let doc = json!({"type":"ACCEPT","framework_id":{"value":"0f1e…-0000"},"accept":{
     "offer_ids":[{"value":"0f1e…-O12"}],
     "operations":[{"type":"LAUNCH","launch":{"task_infos":[{
      "name":"wordcount.split.0","task_id":{"value":"wordcount.split.0.7f3a"},"agent_id":{"value":"0f1e…-S0"},
      "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},
                   {"name":"mem","type":"SCALAR","scalar":{"value":256.0}},
                   {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31005,"end":31005}]}}],
      "command":{"shell":false,"value":"./concord-executor","arguments":["concord-executor","--operator","split"],
       "uris":[{"value":"http://art:8080/concord-executor.tar.gz","extract":true},
               {"value":"http://art:8080/split.json","output_file":"conf/split.json"}],
       "environment":{"variables":[{"name":"CONCORD_TASK_ID","type":"VALUE","value":"wordcount.split.0.7f3a"}]}},
      "kill_policy":{"grace_period":{"nanoseconds":10000000000i64}},
      "labels":{"labels":[{"key":"concord/hash","value":"9c1e"}]}}]}}],
     "filters":{"refuse_seconds":5.0}}});
    let (call, back): (Call, Value) = roundtrip(&doc);
    let mut expected = doc.clone();
    // URI.extract has [default = true]: Mesos prints it on the second URI too.
    expected["accept"]["operations"][0]["launch"]["task_infos"][0]["command"]["uris"][1]["extract"] =
        json!(true);
    assert_eq!(back, expected);

    // The same call built with the helpers serialises to the same JSON.
    let task = TaskInfo {
        name: "wordcount.split.0".into(),
        task_id: "wordcount.split.0.7f3a".into(),
        agent_id: "0f1e…-S0".into(),
        resources: vec![
            Resource::scalar("cpus", 0.5),
            Resource::scalar("mem", 256.0),
            Resource::ranges("ports", &[(31005, 31005)]),
        ],
        command: Some(CommandInfo {
            uris: vec![
                Uri::new("http://art:8080/concord-executor.tar.gz"),
                Uri {
                    output_file: Some("conf/split.json".into()),
                    ..Uri::new("http://art:8080/split.json")
                },
            ],
            environment: Some(Environment::from_pairs([(
                "CONCORD_TASK_ID",
                "wordcount.split.0.7f3a",
            )])),
            ..CommandInfo::exec(
                "./concord-executor",
                ["concord-executor", "--operator", "split"],
            )
        }),
        kill_policy: Some(KillPolicy::grace(std::time::Duration::from_secs(10))),
        labels: Some(Labels::from_pairs([("concord/hash", "9c1e")])),
        ..TaskInfo::default()
    };
    let built = Call::accept(
        "0f1e…-0000".into(),
        vec!["0f1e…-O12".into()],
        vec![Operation::launch(vec![task])],
        Some(Filters::default()),
    );
    assert_eq!(built, call);
    assert_eq!(serde_json::to_value(&built).expect("json"), expected);
}

#[test]
fn launch_group_shape() {
    let op = Operation::launch_group(
        ExecutorInfo {
            r#type: Some(ExecutorType::Default),
            executor_id: "ex".into(),
            resources: vec![Resource::scalar("cpus", 0.1)],
            ..ExecutorInfo::default()
        },
        vec![TaskInfo {
            name: "t".into(),
            task_id: "t".into(),
            agent_id: "S0".into(),
            ..TaskInfo::default()
        }],
    );
    let v = serde_json::to_value(&op).expect("json");
    assert_eq!(v["type"], "LAUNCH_GROUP");
    assert_eq!(v["launch_group"]["executor"]["type"], "DEFAULT");
    assert_eq!(
        v["launch_group"]["task_group"]["tasks"][0]["task_id"],
        json!({"value":"t"})
    );
}

#[test]
fn reconcile_explicit_and_implicit() {
    let explicit = json!({"type":"RECONCILE","framework_id":{"value":"F"},"reconcile":{"tasks":[{"task_id":{"value":"t1"},"agent_id":{"value":"S0"}}]}});
    let implicit =
        json!({"type":"RECONCILE","framework_id":{"value":"F"},"reconcile":{"tasks":[]}});
    let (_, back): (Call, Value) = roundtrip(&explicit);
    assert_eq!(back, explicit);
    // The empty list is kept: the reconcile body itself is required.
    assert_eq!(
        serde_json::to_value(Call::reconcile("F".into(), vec![])).expect("json"),
        implicit
    );
    let built = Call::reconcile(
        "F".into(),
        vec![ReconcileTask {
            task_id: "t1".into(),
            agent_id: Some("S0".into()),
        }],
    );
    assert_eq!(serde_json::to_value(built).expect("json"), explicit);
}

#[test]
fn other_calls_have_mesos_shapes() {
    let f = FrameworkId::new("F");
    let cases = [
        (
            Call::teardown(f.clone()),
            json!({"type":"TEARDOWN","framework_id":{"value":"F"}}),
        ),
        (
            Call::decline(
                f.clone(),
                vec!["O1".into()],
                Some(Filters::refuse_seconds(60.0)),
            ),
            json!({"type":"DECLINE","framework_id":{"value":"F"},"decline":{"offer_ids":[{"value":"O1"}],"filters":{"refuse_seconds":60.0}}}),
        ),
        (
            Call::revive(f.clone(), vec!["concord".into()]),
            json!({"type":"REVIVE","framework_id":{"value":"F"},"revive":{"roles":["concord"]}}),
        ),
        (
            Call::suppress(f.clone(), vec![]),
            json!({"type":"SUPPRESS","framework_id":{"value":"F"},"suppress":{}}),
        ),
        (
            Call::kill(
                f.clone(),
                "t".into(),
                Some("S0".into()),
                Some(KillPolicy::grace(std::time::Duration::from_secs(1))),
            ),
            json!({"type":"KILL","framework_id":{"value":"F"},"kill":{"task_id":{"value":"t"},"agent_id":{"value":"S0"},"kill_policy":{"grace_period":{"nanoseconds":1000000000}}}}),
        ),
        (
            Call::shutdown(f.clone(), "e".into(), "S0".into()),
            json!({"type":"SHUTDOWN","framework_id":{"value":"F"},"shutdown":{"executor_id":{"value":"e"},"agent_id":{"value":"S0"}}}),
        ),
        (
            Call::message(f.clone(), "S0".into(), "e".into(), Bytes::from("hi")),
            json!({"type":"MESSAGE","framework_id":{"value":"F"},"message":{"agent_id":{"value":"S0"},"executor_id":{"value":"e"},"data":"aGk="}}),
        ),
        (
            Call::request(
                f.clone(),
                vec![ResourceRequest {
                    agent_id: None,
                    resources: vec![Resource::scalar("cpus", 1.0)],
                }],
            ),
            json!({"type":"REQUEST","framework_id":{"value":"F"},"request":{"requests":[{"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1.0}}]}]}}),
        ),
    ];
    for (call, expected) in cases {
        assert_eq!(serde_json::to_value(&call).expect("json"), expected);
        let back: Call = serde_json::from_value(expected).expect("parse");
        assert_eq!(back, call);
        assert!(call.has_body_for_type());
    }
    let uf = Call::update_framework(f, FrameworkInfo::new("u", "n"), vec!["r".into()]);
    let v = serde_json::to_value(uf).expect("json");
    assert_eq!(v["type"], "UPDATE_FRAMEWORK");
    assert_eq!(v["update_framework"]["suppressed_roles"], json!(["r"]));
}

#[test]
fn subscribed_event_roundtrips() {
    let doc = json!({"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"0f1e9c2a-…-0000"},"heartbeat_interval_seconds":15.0,
     "master_info":{"id":"0f1e9c2a-…","ip":33554442,"port":5050,"pid":"master@10.0.0.2:5050","hostname":"m1",
      "version":"1.11.0","address":{"hostname":"m1","ip":"10.0.0.2","port":5050},
      "capabilities":[{"type":"AGENT_UPDATE"},{"type":"AGENT_DRAINING"},{"type":"QUOTA_V2"}]}}});
    let (ev, back): (Event, Value) = roundtrip(&doc);
    assert_eq!(back, doc);
    let s = ev.subscribed.expect("body");
    assert_eq!(s.heartbeat_interval_seconds, Some(15.0));
    let mi = s.master_info.expect("master info");
    assert_eq!(
        mesos_u32_to_ipv4(mi.ip),
        std::net::Ipv4Addr::new(10, 0, 0, 2)
    );
    assert_eq!(
        ipv4_to_mesos_u32(std::net::Ipv4Addr::new(10, 0, 0, 2)),
        33554442
    );
}

#[test]
fn offers_event_roundtrips() {
    let doc = json!({"type":"OFFERS","offers":{"offers":[{"id":{"value":"0f1e…-O12"},"framework_id":{"value":"0f1e…-0000"},
     "agent_id":{"value":"0f1e…-S0"},"hostname":"a1",
     "url":{"scheme":"http","address":{"hostname":"a1","ip":"10.0.0.5","port":5051},"path":"/slave(1)"},
     "allocation_info":{"role":"concord"},
     "resources":[
      {"name":"cpus","type":"SCALAR","scalar":{"value":4.0},"role":"*","allocation_info":{"role":"concord"}},
      {"name":"mem","type":"SCALAR","scalar":{"value":15360.0},"role":"*","allocation_info":{"role":"concord"}},
      {"name":"disk","type":"SCALAR","scalar":{"value":40000.0},"role":"*","allocation_info":{"role":"concord"}},
      {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]},"role":"*","allocation_info":{"role":"concord"}}],
     "attributes":[{"name":"rack","type":"TEXT","text":{"value":"r1"}}]}]}});
    let (ev, back): (Event, Value) = roundtrip(&doc);
    assert_eq!(back, doc);
    let offer = &ev.offer_list()[0];
    assert_eq!(resources::scalar_total(&offer.resources, "cpus"), 4.0);
    let want = resources::allocate_to(&[Resource::scalar("cpus", 1.0).with_role("*")], "concord");
    assert!(resources::contains(&offer.resources, &want));
    assert!(offer.resources[0].is_unreserved());
}

#[test]
fn update_event_and_acknowledge() {
    let update = json!({"type":"UPDATE","update":{"status":{"task_id":{"value":"wordcount.split.0.7f3a"},"state":"TASK_RUNNING",
     "source":"SOURCE_EXECUTOR","agent_id":{"value":"0f1e…-S0"},"executor_id":{"value":"wordcount.split.0.7f3a"},
     "timestamp":1724419140.52,"uuid":"mhqnAHEeRmeEvUlTt0yG9g==",
     "container_status":{"container_id":{"value":"5b0e…"},"executor_pid":4242,
      "network_infos":[{"ip_addresses":[{"protocol":"IPv4","ip_address":"10.0.0.5"}]}]}}}});
    let ack = json!({"type":"ACKNOWLEDGE","framework_id":{"value":"0f1e…-0000"},"acknowledge":{"agent_id":{"value":"0f1e…-S0"},
     "task_id":{"value":"wordcount.split.0.7f3a"},"uuid":"mhqnAHEeRmeEvUlTt0yG9g=="}});
    let (ev, back): (Event, Value) = roundtrip(&update);
    assert_eq!(back, update);
    let status = ev.task_status().expect("status").clone();
    assert_eq!(status.state, TaskState::Running);
    assert!(!status.state.is_terminal());
    assert_eq!(status.source, Some(TaskStatusSource::Executor));
    assert_eq!(status.uuid.as_ref().map(Bytes::len), Some(16));
    assert!(status.needs_ack());
    let built = Call::acknowledge(
        "0f1e…-0000".into(),
        status.agent_id.clone().expect("agent"),
        status.task_id.clone(),
        status.uuid.clone().expect("uuid"),
    );
    assert_eq!(serde_json::to_value(&built).expect("json"), ack);
    let (_, ack_back): (Call, Value) = roundtrip(&ack);
    assert_eq!(ack_back, ack);
}

#[test]
fn small_events() {
    for doc in [
        json!({"type":"HEARTBEAT"}),
        json!({"type":"ERROR","error":{"message":"Framework failed over"}}),
        json!({"type":"RESCIND","rescind":{"offer_id":{"value":"O1"}}}),
        json!({"type":"RESCIND_INVERSE_OFFER","rescind_inverse_offer":{"inverse_offer_id":{"value":"I1"}}}),
        json!({"type":"FAILURE","failure":{"agent_id":{"value":"S0"}}}),
        json!({"type":"FAILURE","failure":{"agent_id":{"value":"S0"},"executor_id":{"value":"e"},"status":-1}}),
        json!({"type":"MESSAGE","message":{"agent_id":{"value":"S0"},"executor_id":{"value":"e"},"data":"aGk="}}),
        json!({"type":"INVERSE_OFFERS","inverse_offers":{"inverse_offers":[{"id":{"value":"I1"},"framework_id":{"value":"F"},
            "agent_id":{"value":"S0"},"unavailability":{"start":{"nanoseconds":1},"duration":{"nanoseconds":2}}}]}}),
        json!({"type":"UPDATE_OPERATION_STATUS","update_operation_status":{"status":{"operation_id":{"value":"op"},
            "state":"OPERATION_FINISHED","uuid":{"value":"mhqnAHEeRmeEvUlTt0yG9g=="},"agent_id":{"value":"S0"}}}}),
    ] {
        let (_, back): (Event, Value) = roundtrip(&doc);
        assert_eq!(back, doc);
    }
    assert_eq!(
        serde_json::to_value(Event::heartbeat()).expect("json"),
        json!({"type":"HEARTBEAT"})
    );
    assert_eq!(
        serde_json::to_value(Event::error("Framework failed over")).expect("json"),
        json!({"type":"ERROR","error":{"message":"Framework failed over"}})
    );
}

#[test]
fn unknown_enum_names_do_not_break_decoding() {
    let doc = json!({"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_FROM_THE_FUTURE",
        "source":"SOURCE_SOMEWHERE","reason":"REASON_NEW","container_status":{"network_infos":[{"ip_addresses":[{"protocol":"IPv9"}]}]}}}});
    let (ev, back): (Event, Value) = roundtrip(&doc);
    assert_eq!(back, doc);
    let st = ev.task_status().expect("status");
    assert_eq!(st.state, TaskState::Other("TASK_FROM_THE_FUTURE".into()));
    assert!(st.state.is_other());
    assert_eq!(
        st.reason,
        Some(TaskStatusReason::Other("REASON_NEW".into()))
    );
    let ev: Event =
        serde_json::from_value(json!({"type":"NEW_EVENT","new_event":{"x":1}})).expect("parse");
    assert_eq!(ev.r#type, EventType::Other("NEW_EVENT".into()));
    // Every known state name round-trips through its enum.
    for s in TaskState::ALL {
        let v = serde_json::to_value(s).expect("json");
        assert_eq!(&serde_json::from_value::<TaskState>(v).expect("parse"), s);
    }
    assert_eq!(TaskStatusReason::ALL.len(), 35);
}

#[test]
fn accepts_what_mesos_accepts() {
    // Numbers as strings, booleans as strings, null repeated fields, unknown keys,
    // base64 without padding.
    let doc = json!({"type":"UPDATE","unknown_top":1,"update":{"status":{"task_id":{"value":"t","extra":true},
        "state":"TASK_FINISHED","timestamp":"1724419140.5","healthy":"true","uuid":"mhqnAHEeRmeEvUlTt0yG9g",
        "container_status":{"executor_pid":"42","network_infos":null}}}});
    let ev: Event = serde_json::from_value(doc).expect("parse");
    let st = ev.task_status().expect("status");
    assert_eq!(st.timestamp, Some(1724419140.5));
    assert_eq!(st.healthy, Some(true));
    assert_eq!(
        st.uuid.as_ref().map(Bytes::to_base64).as_deref(),
        Some("mhqnAHEeRmeEvUlTt0yG9g==")
    );
    assert_eq!(
        st.container_status.as_ref().and_then(|c| c.executor_pid),
        Some(42)
    );
    assert!(st.state.is_terminal());

    let fi: FrameworkInfo =
        serde_json::from_value(json!({"user":"u","name":"n","failover_timeout":"Infinity",
        "checkpoint":"false","roles":null}))
        .expect("parse");
    assert!(fi.failover_timeout.is_infinite());
    assert!(!fi.checkpoint);
    assert_eq!(
        serde_json::to_value(&fi).expect("json")["failover_timeout"],
        json!("Infinity")
    );

    let r: Resource = serde_json::from_value(
        json!({"name":"ports","type":"RANGES","ranges":{"range":[{"begin":"1","end":2.0}]}}),
    )
    .expect("parse");
    assert_eq!(r.range_pairs(), vec![(1, 2)]);
    assert!(serde_json::from_value::<Bytes>(json!("not base64!")).is_err());
}

#[test]
fn printed_defaults() {
    assert_eq!(
        serde_json::to_value(CommandInfo::shell("sleep 30")).expect("json"),
        json!({"shell":true,"value":"sleep 30"})
    );
    assert_eq!(
        serde_json::to_value(Uri::new("http://x/a.tgz")).expect("json"),
        json!({"value":"http://x/a.tgz","extract":true})
    );
    assert_eq!(
        serde_json::to_value(Filters::default()).expect("json"),
        json!({"refuse_seconds":5.0})
    );
    assert_eq!(
        serde_json::to_value(Variable::new("A", "b")).expect("json"),
        json!({"name":"A","type":"VALUE","value":"b"})
    );
    assert_eq!(
        serde_json::to_value(AgentInfo {
            hostname: "a".into(),
            ..AgentInfo::default()
        })
        .expect("json"),
        json!({"hostname":"a","port":5051})
    );
    let hc: HealthCheck =
        serde_json::from_value(json!({"type":"TCP","tcp":{"port":80}})).expect("parse");
    assert_eq!(hc.interval_seconds, 10.0);
    assert_eq!(hc.consecutive_failures, 3);
    let ip: IpAddress = serde_json::from_value(json!({"ip_address":"10.0.0.1"})).expect("parse");
    assert_eq!(ip.protocol, Protocol::IPv4);
    // Missing fields with defaults deserialize to the proto default.
    let ci: CommandInfo = serde_json::from_value(json!({"value":"x"})).expect("parse");
    assert!(ci.shell);
    let u: Uri = serde_json::from_value(json!({"value":"x"})).expect("parse");
    assert!(u.extract);
    // null = unset = the proto default.
    let u: Uri = serde_json::from_value(json!({"value":"x","extract":null})).expect("parse");
    assert!(u.extract);
    let ci: CommandInfo = serde_json::from_value(json!({"shell":null,"value":"x"})).expect("parse");
    assert!(ci.shell);
    let ci: CommandInfo =
        serde_json::from_value(json!({"shell":"false","value":"x"})).expect("parse");
    assert!(!ci.shell);
    let f: Filters = serde_json::from_value(json!({})).expect("parse");
    assert_eq!(f.refuse_seconds, 5.0);
    let f: Filters = serde_json::from_value(json!({"refuse_seconds":null})).expect("parse");
    assert_eq!(f.refuse_seconds, 5.0);
    let f: Filters = serde_json::from_value(json!({"refuse_seconds":"0"})).expect("parse");
    assert_eq!(f.refuse_seconds, 0.0);
}

#[test]
fn operator_responses_parse() {
    let doc = json!({"type":"GET_STATE","get_state":{
        "get_tasks":{"tasks":[{"name":"t","task_id":{"value":"t"},"framework_id":{"value":"F"},"agent_id":{"value":"S0"},
            "state":"TASK_RUNNING","resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}],
            "statuses":[{"task_id":{"value":"t"},"state":"TASK_RUNNING","timestamp":1.5}]}]},
        "get_executors":{"executors":[{"executor_info":{"executor_id":{"value":"e"}},"agent_id":{"value":"S0"}}]},
        "get_frameworks":{"frameworks":[{"framework_info":{"user":"u","name":"n","failover_timeout":0.0,"checkpoint":false},
            "active":true,"connected":true,"recovered":false,"registered_time":{"nanoseconds":5}}]},
        "get_agents":{"agents":[{"agent_info":{"hostname":"a1","port":5051,"id":{"value":"S0"}},"active":true,"version":"1.11.0",
            "pid":"slave(1)@10.0.0.5:5051","registered_time":{"nanoseconds":5},"capabilities":[{"type":"MULTI_ROLE"}]}]}}});
    let (resp, back): (OperatorResponse, Value) = roundtrip(&doc);
    assert_eq!(back, doc);
    let st = resp.get_state.expect("state");
    assert_eq!(st.get_tasks.tasks[0].state, TaskState::Running);
    assert_eq!(
        st.get_agents.agents[0].capabilities[0].r#type,
        AgentCapabilityType::MultiRole
    );
    let v: OperatorResponse = serde_json::from_value(json!({"type":"GET_VERSION","get_version":{"version_info":{
        "version":"1.11.0","build_date":"2020-11-19 11:24:42","build_time":1605785082.0,"build_user":"root"}}})).expect("parse");
    assert_eq!(
        v.get_version.expect("version").version_info.version,
        "1.11.0"
    );
    let h: OperatorResponse =
        serde_json::from_value(json!({"type":"GET_HEALTH","get_health":{"healthy":true}}))
            .expect("parse");
    assert_eq!(h.get_health, Some(GetHealth { healthy: true }));
    assert_eq!(
        serde_json::to_value(OperatorCall::new(OperatorCallType::GetTasks)).expect("json"),
        json!({"type":"GET_TASKS"})
    );
}

#[test]
fn legacy_state_parses() {
    let doc = json!({"version":"1.11.0","build_date":"d","build_time":1.0,"build_user":"u","start_time":2.0,
        "id":"M","pid":"master@127.0.0.1:5050","hostname":"h","capabilities":["AGENT_UPDATE"],
        "activated_slaves":1.0,"deactivated_slaves":0.0,"unreachable_slaves":0.0,"flags":{"port":"5050"},
        "slaves":[{"id":"S0","hostname":"a","port":5051,"attributes":{"rack":"r1"},"pid":"slave(1)@127.0.0.1:5051",
            "registered_time":3.0,"resources":{"cpus":2.0,"gpus":0.0,"mem":1024.0,"disk":1024.0,"ports":"[31000-32000]"},
            "used_resources":{"cpus":0.0,"gpus":0.0,"mem":0.0,"disk":0.0},"offered_resources":{"cpus":0.0,"gpus":0.0,"mem":0.0,"disk":0.0},
            "reserved_resources":{},"unreserved_resources":{"cpus":2.0,"gpus":0.0,"mem":1024.0,"disk":1024.0},
            "active":true,"deactivated":false,"version":"1.11.0","capabilities":["MULTI_ROLE"]}],
        "frameworks":[{"id":"F","name":"n","used_resources":{"cpus":0.1},"offered_resources":{},"capabilities":["MULTI_ROLE"],
            "hostname":"h","webui_url":"","active":true,"connected":true,"recovered":false,"user":"u","failover_timeout":0.0,
            "checkpoint":false,"registered_time":1.0,"unregistered_time":0.0,"resources":{},"roles":["concord"],
            "tasks":[{"id":"t","name":"t","framework_id":"F","executor_id":"","slave_id":"S0","state":"TASK_RUNNING",
                "resources":{"cpus":0.1,"mem":32.0},"statuses":[{"state":"TASK_RUNNING","timestamp":4.0}]}],
            "unreachable_tasks":[],"completed_tasks":[],"offers":[],"executors":[]}],
        "completed_frameworks":[],"orphan_tasks":[],"unregistered_frameworks":[]});
    let st: legacy::MasterState = serde_json::from_value(doc).expect("parse");
    assert_eq!(st.frameworks[0].tasks[0].state, "TASK_RUNNING");
    assert_eq!(
        st.slaves[0].resources.ports.as_deref(),
        Some("[31000-32000]")
    );
}

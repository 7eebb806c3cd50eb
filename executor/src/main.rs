//! `concord-executor`: hosts one operator instance as a Mesos task (or by hand).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use concord_executor::auth::DataplaneAuth;
use concord_executor::config::{ExecutorArgs, OperatorSpec};
use concord_executor::delivery::Checkpoints;
use concord_executor::discovery::{self, Endpoint, Paths};
use concord_executor::http::{self, HttpState};
use concord_executor::metrics::Metrics;
use concord_executor::operators::{self, BuiltinEnv};
use concord_executor::router::conn::ConnSettings;
use concord_executor::router::{Router, inbound};
use concord_executor::runtime::{Ingest, Runtime, RuntimeError, RuntimeState};
use concord_executor::trace::{Sampler, Tracer};
use concord_executor::wire;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> anyhow::Result<()> {
    let args = ExecutorArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let code = rt.block_on(run(args, handle))?;
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}

async fn run(args: ExecutorArgs, handle: tokio::runtime::Handle) -> anyhow::Result<i32> {
    let spec: OperatorSpec =
        serde_json::from_str(&args.operator_spec).context("parsing CONCORD_OPERATOR_SPEC")?;
    let task_id = args.task_id.clone().unwrap_or_else(|| {
        format!(
            "{}-{}-{}-{:x}",
            args.topology,
            args.operator,
            args.instance,
            concord_executor::clock::wall_ns() & 0xffff_ffff
        )
    });
    tracing::info!(operator = %args.operator, instance = args.instance, task = %task_id, "starting executor");
    let at_least_once = match args.delivery.as_str() {
        "at-most-once" => false,
        "at-least-once" => true,
        other => anyhow::bail!("unknown delivery `{other}` (at-most-once or at-least-once)"),
    };

    // The advertised address only: a port on every interface would be reachable from
    // networks the agent never meant to serve.
    let bind_host = args.advertise_host.as_str();
    let data = TcpListener::bind((bind_host, args.data_port))
        .with_context(|| format!("binding data port on {bind_host}"))?;
    let data_port = data.local_addr()?.port();
    let metrics_listener = std::net::TcpListener::bind((bind_host, args.metrics_port))
        .with_context(|| format!("binding metrics port on {bind_host}"))?;
    let metrics_port = metrics_listener.local_addr()?.port();
    let data_addr = format!("{}:{data_port}", args.advertise_host);
    let metrics_addr = format!("{}:{metrics_port}", args.advertise_host);

    let metrics = Arc::new(Metrics::new(&args.operator, args.instance));
    let auth = match (&args.dataplane_secret_file, args.insecure_no_dataplane_auth) {
        (Some(path), _) => Some(
            DataplaneAuth::from_file(path, metrics.dataplane_auth_failures.clone())
                .context("loading the data-plane secret")?,
        ),
        (None, true) => {
            tracing::warn!(
                "--insecure-no-dataplane-auth: data-plane connections are not authenticated; \
                 anyone who can reach the data port can inject records"
            );
            None
        }
        (None, false) => anyhow::bail!(
            "no data-plane secret: set {} (or --dataplane-secret-file) to the topology's \
             secret file, or pass --insecure-no-dataplane-auth",
            concord_schemas::dataplane::DATAPLANE_SECRET_FILE_ENV
        ),
    };
    let tracer = Arc::new(Tracer::new(&args.operator, args.instance, &task_id));
    let state = Arc::new(RuntimeState::default());
    let shutdown = Arc::new(AtomicBool::new(false));

    let (in_tx, in_rx) = std::sync::mpsc::sync_channel(args.input_queue_batches.max(1));
    inbound::spawn_listener(
        data,
        in_tx.clone(),
        metrics.input_queue.clone(),
        auth.clone(),
    )?;

    metrics_listener.set_nonblocking(true)?;
    let metrics_listener = tokio::net::TcpListener::from_std(metrics_listener)?;
    let app = http::router(HttpState {
        metrics: metrics.clone(),
        tracer: tracer.clone(),
        state: state.clone(),
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics_listener, app).await {
            tracing::warn!(error = %e, "metrics server ended");
        }
    });
    tracing::info!(%data_addr, %metrics_addr, "listening");

    let paths = Paths::new(&args.etcd_prefix, &args.namespace, &args.topology);
    let endpoint = Endpoint {
        task_id: task_id.clone(),
        instance: args.instance,
        data_addr: data_addr.clone(),
        metrics_addr,
        template_hash: args.template_hash.clone(),
        inputs: spec.inputs.clone(),
        ready: false,
        problem: None,
    };
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let (routing_tx, routing_rx) = std::sync::mpsc::channel();
    // etcd may be unreachable when the task starts: keep retrying (the executor serves
    // /healthz meanwhile and is not ready), never exit for that.
    let registration = {
        let etcd = args.etcd.clone();
        let access = args.etcd_access.clone();
        let key = paths.endpoint_key(&args.operator, args.instance, &task_id);
        let operator = args.operator.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let client = loop {
                match discovery::connect_with(&etcd, &access).await {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::warn!(error = %e, %etcd, "cannot reach etcd; retrying");
                        tokio::select! {
                            _ = stop_rx.changed() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            let watch = tokio::spawn(discovery::run_watch(
                client.clone(),
                paths,
                operator,
                routing_tx,
            ));
            discovery::run_registration(client, key, endpoint, state, stop_rx).await;
            watch.abort();
        })
    };

    let errors = concord_executor::record_errors::RecordErrors::new(
        &spec.on_error,
        &args.operator,
        &task_id,
        metrics.failed_records("skipped"),
        metrics.failed_records("dead_lettered"),
    )
    .map_err(anyhow::Error::msg)?;
    let env = BuiltinEnv {
        ingest: Ingest::new(in_tx, metrics.input_queue.clone()),
        tokio: handle,
        operator: args.operator.clone(),
        instance: args.instance,
        instances: spec.instances,
        task_id: task_id.clone(),
        bind_host: args.advertise_host.clone(),
        namespace: args.namespace.clone(),
        topology: args.topology.clone(),
        at_least_once,
        metrics: metrics.clone(),
        state: state.clone(),
        errors: errors.clone(),
    };
    let operator = operators::build(&spec, &env).context("creating operator")?;
    let hello = serde_json::json!({
        "operator": args.operator, "instance": args.instance, "taskId": task_id
    })
    .to_string();
    let (acks_tx, acks_rx) = std::sync::mpsc::channel();
    let router = Router::new(
        ConnSettings {
            batch_bytes: args.batch_bytes.max(256),
            queue_batches: args.queue_batches.max(1),
            hello: wire::hello_frame(&hello),
            auth,
            dropped: metrics.dropped_downstream_gone(),
            acks: at_least_once.then_some(acks_tx),
        },
        Duration::from_micros(args.linger_us),
        metrics.clone(),
    );
    let router = if at_least_once {
        router.with_checkpoints(Checkpoints::new(acks_rx))
    } else {
        router
    };
    let runtime = Runtime {
        operator,
        config: concord_sdk::Config::new(spec.config.clone()),
        instance: args.instance,
        is_source: spec.inputs.is_empty(),
        router,
        input: in_rx,
        routing: routing_rx,
        shutdown: shutdown.clone(),
        state: state.clone(),
        metrics: metrics.clone(),
        tracer,
        sampler: Sampler::new(args.trace_sample_rate),
        source_wait: Duration::from_millis(args.source_wait_ms),
        errors,
    };
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("operator".into())
        .spawn(move || {
            let _ = done_tx.send(runtime.run());
        })?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let result = tokio::select! {
        _ = term.recv() => None,
        _ = int.recv() => None,
        r = &mut done_rx => Some(r),
    };
    if result.is_none() {
        tracing::info!("signal received; shutting down");
    }
    shutdown.store(true, Ordering::Relaxed);
    let result = match result {
        Some(r) => r,
        None => done_rx.await,
    };
    // destroy has been called by now; deregister, then flush.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), registration).await;
    match result {
        Ok(Ok(router)) => {
            tokio::task::spawn_blocking(move || {
                router.close(Instant::now() + Duration::from_secs(5));
            })
            .await?;
            tracing::info!("executor stopped");
            Ok(0)
        }
        Ok(Err(RuntimeError::StoppedBeforeInit)) => {
            tracing::info!("stopped before the operator was initialised");
            Ok(0)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "operator failed");
            Ok(1)
        }
        Err(_) => Ok(1),
    }
}

//! Policy evaluation alone (cairn-policy's engines), for scripts/bench_query.sh: the shipped policy on one input,
//! timed per evaluation under regorus and opa-wasm; with OPA's mean from `opa bench` (ns per
//! op) as the fourth argument, the ratios too.
//!
//! Usage: bench_policy POLICY_DIR BUNDLE INPUT_JSON [OPA_NS_PER_OP]

use std::time::{Duration, Instant};

use cairn_policy::{DEFAULT_ENTRYPOINT, Engine, Input, RegorusEngine, WasmEngine, decide};

const N: usize = 20_000;

fn pct(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort();
    xs[((xs.len() - 1) as f64 * p / 100.0).round() as usize]
}

async fn run(engine: &dyn Engine, input: &Input, opa_ns: Option<f64>) {
    for _ in 0..1000 {
        decide(engine, input, Duration::from_secs(1)).await;
    }
    let mut times = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let out = decide(engine, input, Duration::from_secs(1)).await;
        times.push(t.elapsed());
        assert!(out.error.is_none(), "{:?}", out.error);
    }
    let mean = times.iter().sum::<Duration>() / N as u32;
    let (p50, p99) = (pct(&mut times, 50.0), pct(&mut times, 99.0));
    let ratio = opa_ns
        .map(|ns| format!("  mean vs opa bench {:.2}x", mean.as_nanos() as f64 / ns))
        .unwrap_or_default();
    println!(
        "{:9} {N} evaluations: p50 {:.1} µs  p99 {:.1} µs  mean {:.1} µs{ratio}",
        engine.name(),
        p50.as_nanos() as f64 / 1e3,
        p99.as_nanos() as f64 / 1e3,
        mean.as_nanos() as f64 / 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() >= 4,
        "usage: bench_policy POLICY_DIR BUNDLE INPUT_JSON [OPA_NS_PER_OP]"
    );
    let input: Input = serde_json::from_slice(&std::fs::read(&args[3]).unwrap()).unwrap();
    let opa_ns = args.get(4).and_then(|s| s.parse::<f64>().ok());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let regorus =
            RegorusEngine::load(args[1].as_ref(), DEFAULT_ENTRYPOINT, Duration::from_secs(1))
                .unwrap();
        run(&regorus, &input, opa_ns).await;
        let wasm = WasmEngine::load(args[2].as_ref(), DEFAULT_ENTRYPOINT)
            .await
            .unwrap();
        run(&wasm, &input, opa_ns).await;
    });
}

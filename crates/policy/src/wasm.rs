//! opa-wasm: a bundle built by `opa build -t wasm -e <entrypoint>`, run on wasmtime. Each
//! evaluation takes an instance from a pool (instances are never shared by two evaluations at
//! once) with a fresh fuel budget, so a runaway policy traps instead of spinning.

use std::path::Path;
use std::sync::Mutex;

use opa_wasm::wasmtime;
use opa_wasm::{DefaultContext, Policy, Runtime};

use crate::{BoxFuture, Engine, Evaluated, Input, PolicyError, revision_of};

/// Instructions one evaluation may run (the shipped policy needs well under 1% of it).
const FUEL: u64 = 200_000_000;

pub struct WasmEngine {
    engine: wasmtime::Engine,
    module: wasmtime::Module,
    entrypoint: String,
    revision: String,
    pool: Mutex<Vec<Instance>>,
}

struct Instance {
    store: wasmtime::Store<()>,
    policy: Policy<DefaultContext>,
}

impl WasmEngine {
    /// Loads `bundle` (the `.tar.gz` of `opa build -t wasm`) and checks that it exports
    /// `entrypoint` (slash form).
    pub async fn load(bundle: &Path, entrypoint: &str) -> Result<Self, PolicyError> {
        let load_err = |message: String| PolicyError::Load {
            path: bundle.display().to_string(),
            message,
        };
        let archive = tokio::fs::read(bundle)
            .await
            .map_err(|e| load_err(e.to_string()))?;
        let revision = revision_of([("bundle", archive.as_slice())]);
        let wasm = opa_wasm::load_bundle(std::io::Cursor::new(archive))
            .await
            .map_err(|e| {
                load_err(format!(
                    "{e:#} (build it with `opa build -t wasm -e {entrypoint}`)"
                ))
            })?;
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let engine = wasmtime::Engine::new(&config).map_err(|e| load_err(e.to_string()))?;
        let module =
            wasmtime::Module::new(&engine, &wasm).map_err(|e| load_err(format!("{e:#}")))?;
        let this = WasmEngine {
            engine,
            module,
            entrypoint: entrypoint.trim_matches('/').to_string(),
            revision,
            pool: Mutex::new(Vec::new()),
        };
        let instance = this.instance().await.map_err(|e| load_err(e.to_string()))?;
        if !instance
            .policy
            .entrypoints()
            .contains(this.entrypoint.as_str())
        {
            let mut found: Vec<_> = instance
                .policy
                .entrypoints()
                .into_iter()
                .map(str::to_string)
                .collect();
            found.sort();
            return Err(load_err(format!(
                "the bundle has no entrypoint {} (it has: {}); rebuild with -e {}",
                this.entrypoint,
                found.join(", "),
                this.entrypoint
            )));
        }
        this.put(instance);
        Ok(this)
    }

    async fn instance(&self) -> Result<Instance, PolicyError> {
        let err = |e: opa_wasm::wasmtime::Error| {
            PolicyError::Evaluation(format!("instantiating the bundle: {e:#}"))
        };
        let mut store = wasmtime::Store::new(&self.engine, ());
        store.set_fuel(FUEL).map_err(err)?;
        let runtime = Runtime::new(&mut store, &self.module)
            .await
            .map_err(|e| PolicyError::Evaluation(format!("instantiating the bundle: {e:#}")))?;
        let policy = runtime
            .without_data(&mut store)
            .await
            .map_err(|e| PolicyError::Evaluation(format!("instantiating the bundle: {e:#}")))?;
        Ok(Instance { store, policy })
    }

    fn put(&self, instance: Instance) {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(instance);
    }

    fn take(&self) -> Option<Instance> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }
}

impl Engine for WasmEngine {
    fn name(&self) -> &'static str {
        "opa-wasm"
    }

    fn revision(&self) -> String {
        self.revision.clone()
    }

    fn evaluate<'a>(&'a self, input: &'a Input) -> BoxFuture<'a, Result<Evaluated, PolicyError>> {
        Box::pin(async move {
            let mut instance = match self.take() {
                Some(i) => i,
                None => self.instance().await?,
            };
            instance
                .store
                .set_fuel(FUEL)
                .map_err(|e| PolicyError::Evaluation(e.to_string()))?;
            let results: Vec<serde_json::Value> = instance
                .policy
                .evaluate(&mut instance.store, &self.entrypoint, input)
                .await
                // An instance that failed (out of fuel, a trap) is dropped, not reused.
                .map_err(|e| PolicyError::Evaluation(format!("{e:#}")))?;
            self.put(instance);
            let result = match results.into_iter().next() {
                Some(serde_json::Value::Object(mut o)) => o.remove("result"),
                _ => None,
            };
            match result {
                Some(result) => Ok(Evaluated {
                    result,
                    revision: self.revision.clone(),
                }),
                None => Err(PolicyError::Undefined {
                    entrypoint: self.entrypoint.clone(),
                }),
            }
        })
    }
}

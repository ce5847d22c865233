//! The wasmtime side: one `Engine`, components compiled once (with an on-disk compile cache),
//! a `Linker` with WASI p2, wasi:http, Spin variables and native `dub:media`, a `ProxyPre` per
//! component, and a fresh, limited `Store` per request.

use crate::bindings;
use crate::kv::{KvData, KvLimits, KvStore, KvView};
use crate::manifest::{App, ComponentConfig};
use crate::media::{DEFAULT_MEDIA_BUDGET, MediaBudget, MediaData, MediaView};
use crate::outbound::{AllowList, OutboundHooks};
use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How often the engine's epoch advances.
pub const EPOCH_TICK: Duration = Duration::from_millis(100);

/// Limits applied to the engine and to every request's store.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests served at once (also sizes the instance pool).
    pub max_concurrent: u32,
    /// Linear memory per store.
    pub memory_bytes: usize,
    /// Wall-clock budget of one request, guest CPU and waiting included.
    pub request_timeout: Duration,
    /// Host memory held by one store's media resources.
    pub media_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: 64,
            memory_bytes: 512 << 20,
            request_timeout: Duration::from_secs(60),
            media_bytes: DEFAULT_MEDIA_BUDGET,
        }
    }
}

/// Everything one request's store holds.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    limits: StoreLimits,
    variables: Arc<HashMap<String, String>>,
    media: MediaBudget,
    started: Instant,
    timeout: Duration,
    kv: Arc<KvStore>,
    kv_labels: Arc<[String]>,
    kv_open: usize,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl bindings::spin::fermyon::spin::variables::Host for HostState {
    fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, bindings::spin::fermyon::spin::variables::Error>> {
        use bindings::spin::fermyon::spin::variables::Error;
        if crate::manifest::validate_variable_name(&name).is_err() {
            return Ok(Err(Error::InvalidName(name)));
        }
        Ok(self
            .variables
            .get(&name)
            .cloned()
            .ok_or(Error::Undefined(format!("no variable for {name:?}"))))
    }
}

/// A component ready to serve: pre-instantiated, with its configuration.
pub struct LoadedComponent {
    /// Component id from the manifest.
    pub id: Arc<str>,
    pre: ProxyPre<HostState>,
    allow: Arc<AllowList>,
    variables: Arc<HashMap<String, String>>,
    kv_labels: Arc<[String]>,
}

/// Where a component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileOutcome {
    /// Loaded from the compile cache.
    CacheHit,
    /// Compiled now and written to the cache.
    Compiled,
    /// Compiled now, cache disabled or not writable.
    CompiledUncached,
}

/// The engine and every component the manifest's triggers use.
pub struct Runtime {
    engine: Engine,
    components: HashMap<String, Arc<LoadedComponent>>,
    limits: Limits,
    /// The app's `default` key-value store, shared by every request.
    kv: Arc<KvStore>,
}

/// Engine configuration: async, epoch interruption, pooling allocator sized for
/// `limits.max_concurrent` requests.
pub fn engine(limits: &Limits) -> Result<Engine> {
    let n = limits.max_concurrent.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A wasip2 Rust component is a handful of core instances (main module, shims).
        .max_core_instances_per_component(32)
        .total_core_instances(n.saturating_mul(16))
        .max_memories_per_component(4)
        .total_memories(n.saturating_mul(4))
        .max_tables_per_component(8)
        .max_tables_per_module(2)
        .total_tables(n.saturating_mul(8))
        .total_stacks(n)
        .max_memory_size(limits.memory_bytes)
        .max_unused_warm_slots(n.min(16));
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| anyhow!("wasmtime engine: {e:#}"))
}

/// Start the thread that advances the engine's epoch (drives request deadlines).
pub fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("dubhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("spawning the epoch thread")?;
    Ok(())
}

/// The compile cache directory: `$DUBHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/dubhost`, else
/// `~/.cache/dubhost`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DUBHOST_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("dubhost"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("dubhost"))
}

/// Cache file name: sha256 of the wasm, plus a hash of everything in the engine configuration
/// and wasmtime build that makes compiled code compatible.
fn cache_key(engine: &Engine, wasm: &[u8], source: &Path) -> String {
    let digest = Sha256::digest(wasm);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component");
    format!("{stem}-{hex}-{:016x}.cwasm", h.finish())
}

/// Load a component, through the compile cache when `cache_dir` is set.
pub fn load_component(
    engine: &Engine,
    source: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, CompileOutcome)> {
    let wasm = std::fs::read(source)
        .with_context(|| format!("cannot read component {}", source.display()))?;
    let Some(dir) = cache_dir else {
        let c = Component::new(engine, &wasm)
            .map_err(|e| anyhow!("compiling {}: {e:#}", source.display()))?;
        return Ok((c, CompileOutcome::CompiledUncached));
    };
    let path = dir.join(cache_key(engine, &wasm, source));
    if path.is_file() {
        match deserialize_cached(engine, &path) {
            Ok(c) => return Ok((c, CompileOutcome::CacheHit)),
            Err(e) => eprintln!(
                "dubhost: ignoring unusable compile cache {}: {e:#}",
                path.display()
            ),
        }
    }
    let code = engine
        .precompile_component(&wasm)
        .map_err(|e| anyhow!("compiling {}: {e:#}", source.display()))?;
    match write_atomically(dir, &path, &code) {
        Ok(()) => {
            let c = deserialize_cached(engine, &path)?;
            Ok((c, CompileOutcome::Compiled))
        }
        Err(e) => {
            eprintln!(
                "dubhost: compile cache {} not writable ({e:#}); continuing without it",
                dir.display()
            );
            let c = Component::new(engine, &wasm)
                .map_err(|e| anyhow!("compiling {}: {e:#}", source.display()))?;
            Ok((c, CompileOutcome::CompiledUncached))
        }
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

// Deserializing machine code is `unsafe` in wasmtime because the bytes are trusted to be its
// own output. They are: the file is written only by `load_component` above (atomically, via
// rename, so a reader never maps a partial file), in the user's own cache directory, under a
// name derived from the wasm's sha256 and the engine's compatibility hash; wasmtime also checks
// the header and engine compatibility before using it.
#[allow(unsafe_code)]
fn deserialize_cached(engine: &Engine, path: &Path) -> Result<Component> {
    // SAFETY: see above: the file is this program's own `precompile_component` output.
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(|e| anyhow!("loading {}: {e:#}", path.display()))
}

fn build_linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| anyhow!("{e:#}"))?;
    bindings::spin::fermyon::spin::variables::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )
    .map_err(|e| anyhow!("{e:#}"))?;
    bindings::kv::fermyon::spin::key_value::add_to_linker::<HostState, KvData>(&mut linker, |s| {
        KvView {
            table: &mut s.table,
            store: &s.kv,
            labels: &s.kv_labels,
            open: &mut s.kv_open,
        }
    })
    .map_err(|e| anyhow!("{e:#}"))?;
    bindings::media::MediaImports::add_to_linker::<HostState, MediaData>(&mut linker, |s| {
        MediaView {
            table: &mut s.table,
            budget: &mut s.media,
        }
    })
    .map_err(|e| anyhow!("{e:#}"))?;
    Ok(linker)
}

impl Runtime {
    /// Compile and pre-instantiate every component the app's triggers use.
    pub fn new(app: &App, limits: Limits, cache_dir: Option<&Path>) -> Result<Self> {
        let engine = engine(&limits)?;
        start_epoch_ticker(&engine)?;
        let mut components = HashMap::new();
        let mut ids: Vec<&String> = app.components.keys().collect();
        ids.sort();
        for id in ids {
            let config = &app.components[id];
            let loaded = Self::load(&engine, config, cache_dir)
                .with_context(|| format!("component `{id}`"))?;
            components.insert(id.clone(), Arc::new(loaded));
        }
        Ok(Self {
            engine,
            components,
            limits,
            kv: Arc::new(KvStore::new(KvLimits::default())),
        })
    }

    fn load(
        engine: &Engine,
        config: &ComponentConfig,
        cache_dir: Option<&Path>,
    ) -> Result<LoadedComponent> {
        let t0 = Instant::now();
        let (component, compile) = load_component(engine, &config.source, cache_dir)?;
        let t_compile = t0.elapsed();
        let mut linker = build_linker(engine)?;
        let pre = match linker.instantiate_pre(&component) {
            Ok(pre) => pre,
            Err(e) => {
                // Spin provides interfaces dubhost does not (key-value, sqlite, ...). A
                // component that imports them still runs; calling them traps.
                eprintln!(
                    "dubhost: warning: component `{}` imports something dubhost does not \
                     provide ({e:#}); such imports will trap when called",
                    config.id
                );
                linker
                    .define_unknown_imports_as_traps(&component)
                    .map_err(|e| anyhow!("{e:#}"))?;
                linker
                    .instantiate_pre(&component)
                    .map_err(|e| anyhow!("linking: {e:#}"))?
            }
        };
        let pre = ProxyPre::new(pre).map_err(|e| {
            anyhow!("not an HTTP component (no wasi:http/incoming-handler export): {e:#}")
        })?;
        eprintln!(
            "dubhost: component `{}` from {} ready in {} ms ({}; compile/load {} ms)",
            config.id,
            config.source.display(),
            t0.elapsed().as_millis(),
            match compile {
                CompileOutcome::CacheHit => "compile cache hit",
                CompileOutcome::Compiled => "compiled, cached",
                CompileOutcome::CompiledUncached => "compiled, not cached",
            },
            t_compile.as_millis()
        );
        Ok(LoadedComponent {
            id: Arc::from(config.id.as_str()),
            pre,
            allow: Arc::new(AllowList::new(&config.allowed_outbound_hosts)?),
            variables: Arc::new(config.variables.clone()),
            kv_labels: config.key_value_stores.clone().into(),
        })
    }

    /// The component with this id.
    pub fn component(&self, id: &str) -> Option<&Arc<LoadedComponent>> {
        self.components.get(id)
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh store for one request to `component`.
    pub fn new_store(&self, component: &LoadedComponent) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        // Spin gives components stdout/stderr, no files, no env beyond what the manifest sets,
        // and no raw sockets: outbound traffic goes through wasi:http and the allowlist.
        wasi.inherit_stdout()
            .inherit_stderr()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                component: component.id.clone(),
                allow: component.allow.clone(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .instances(64)
                .tables(64)
                .memories(8)
                .trap_on_grow_failure(false)
                .build(),
            variables: component.variables.clone(),
            media: MediaBudget::new(self.limits.media_bytes),
            started: Instant::now(),
            timeout: self.limits.request_timeout,
            kv: self.kv.clone(),
            kv_labels: component.kv_labels.clone(),
            kv_open: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Every tick past the deadline check, let other tasks run; past the request's wall-clock
        // budget, trap.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let s = ctx.data();
            if s.started.elapsed() > s.timeout {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

impl LoadedComponent {
    /// The pre-instantiated component.
    pub fn pre(&self) -> &ProxyPre<HostState> {
        &self.pre
    }
}

//! The `dub:media` component (build/dub_media.wasm) in wasmtime, called through its WIT exports.

use std::path::Path;

use anyhow::{Result, anyhow};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit/media.wit",
    world: "media",
});

use exports::dub::media::mix::{Background, MixOptions, Placement};
use exports::dub::media::types::MediaError;

/// Store data: WASI p2 context and resource table.
pub struct HostData {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for HostData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// An instantiated media component.
pub struct MediaWasm {
    store: Store<HostData>,
    media: Media,
}

fn media_err(e: MediaError) -> anyhow::Error {
    anyhow!("media error: {e:?}")
}

impl MediaWasm {
    /// Compile and instantiate the component at `path` (Cranelift, default optimisation).
    pub fn load(path: &Path) -> Result<MediaWasm> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, path)?;
        let mut linker: Linker<HostData> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let data = HostData {
            wasi: WasiCtx::builder().inherit_env().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&engine, data);
        let media = Media::instantiate(&mut store, &component, &linker)?;
        Ok(MediaWasm { store, media })
    }

    /// Drop a guest resource.
    pub fn drop(&mut self, r: ResourceAny) -> Result<()> {
        Ok(r.resource_drop(&mut self.store)?)
    }

    /// validate.open-segment
    pub fn open(&mut self, init: &[u8], media: &[u8]) -> Result<ResourceAny> {
        self.media
            .dub_media_validate()
            .call_open_segment(&mut self.store, init, media)?
            .map_err(media_err)
    }

    /// demux.decode-audio
    pub fn decode(&mut self, seg: ResourceAny) -> Result<ResourceAny> {
        self.media
            .dub_media_demux()
            .call_decode_audio(&mut self.store, seg)?
            .map_err(media_err)
    }

    /// resample.resample
    pub fn resample(&mut self, pcm: ResourceAny, rate: u32, channels: u32) -> Result<ResourceAny> {
        self.media
            .dub_media_resample()
            .call_resample(&mut self.store, pcm, rate, channels)?
            .map_err(media_err)
    }

    /// types.pcm constructor.
    pub fn pcm(&mut self, rate: u32, channels: u32, samples: &[f32]) -> Result<ResourceAny> {
        Ok(self.media.dub_media_types().pcm().call_constructor(
            &mut self.store,
            rate,
            channels,
            samples,
        )?)
    }

    /// pcm.slice
    pub fn slice(&mut self, pcm: ResourceAny, start: u64, count: u64) -> Result<ResourceAny> {
        Ok(self
            .media
            .dub_media_types()
            .pcm()
            .call_slice(&mut self.store, pcm, start, count)?)
    }

    /// pcm.to-wav
    pub fn to_wav(&mut self, pcm: ResourceAny) -> Result<Vec<u8>> {
        Ok(self
            .media
            .dub_media_types()
            .pcm()
            .call_to_wav(&mut self.store, pcm)?)
    }

    /// mix.mix with the benchmark's two placements of `voice` (as in [`crate::native`]).
    pub fn mix_two(&mut self, background: ResourceAny, voice: ResourceAny) -> Result<ResourceAny> {
        let rate = i64::from(crate::RATE);
        let voices = [
            Placement {
                speech: voice,
                start_frame: rate / 2,
                speed: 1.0,
            },
            Placement {
                speech: voice,
                start_frame: rate * 7 / 2,
                speed: 1.0,
            },
        ];
        let opts = MixOptions {
            background: Background::Duck,
            duck_db: 12.0,
        };
        self.media
            .dub_media_mix()
            .call_mix(&mut self.store, background, &voices, opts)?
            .map_err(media_err)
    }

    /// remux.remux-audio without priming or lookahead.
    pub fn remux(&mut self, seg: ResourceAny, audio: ResourceAny) -> Result<Vec<u8>> {
        self.media
            .dub_media_remux()
            .call_remux_audio(&mut self.store, seg, audio, None, None)?
            .map_err(media_err)
    }

    /// The whole path through the component, freeing every resource it made.
    pub fn whole(&mut self, init: &[u8], media: &[u8]) -> Result<Vec<u8>> {
        let seg = self.open(init, media)?;
        let pcm = self.decode(seg)?;
        let stt = self.resample(pcm, 16_000, 1)?;
        self.drop(stt)?;
        let voice = self.slice(pcm, 0, 2 * u64::from(crate::RATE))?;
        let mixed = self.mix_two(pcm, voice)?;
        let out = self.remux(seg, mixed)?;
        for r in [mixed, voice, pcm, seg] {
            self.drop(r)?;
        }
        Ok(out)
    }
}

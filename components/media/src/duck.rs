//! Ducking the original audio where speech was recognised, without adding any voice: the
//! failure ladder's middle rung ("original ducked"), used when the speech could be located but
//! not voiced in time. The gain follows the same attack/release ramps as [`crate::mix()`].

use crate::error::{Error, Result};
use crate::mix::{ATTACK_SECS, MAX_DUCK_DB, RELEASE_SECS};
use crate::pcm::Pcm;

/// Most spans accepted in one call.
pub const MAX_SPANS: usize = 1024;

/// Lower `background` by `duck_db` over each `[start, end)` frame span (clamped to the PCM),
/// ramping down over 30 ms before a span and back up over 250 ms after it (the mixer's ramps);
/// outside the spans and their ramps the samples are unchanged (bit-exact).
pub fn duck(background: &Pcm, spans: &[(i64, i64)], duck_db: f32) -> Result<Pcm> {
    background.validate()?;
    if !duck_db.is_finite() || !(0.0..=MAX_DUCK_DB).contains(&duck_db) {
        return Err(Error::Invalid(format!(
            "duck_db {duck_db} outside 0..={MAX_DUCK_DB}"
        )));
    }
    if spans.len() > MAX_SPANS {
        return Err(Error::limit(format!("more than {MAX_SPANS} duck spans")));
    }
    let n = background.frames();
    let ch = usize::from(background.channels);
    let rate = background.sample_rate as f32;
    let floor = 10f32.powf(-duck_db / 20.0);
    let attack = ((ATTACK_SECS * rate) as usize).max(1);
    let release = ((RELEASE_SECS * rate) as usize).max(1);

    // Gain per frame: 1.0 outside, `floor` inside, linear ramps around.
    let mut gain = vec![1.0f32; n];
    for &(start, end) in spans {
        let (s, e) = (
            start.clamp(0, n as i64) as usize,
            end.clamp(0, n as i64) as usize,
        );
        if s >= e {
            continue;
        }
        let set = |g: &mut f32, v: f32| *g = g.min(v);
        for g in &mut gain[s..e] {
            set(g, floor);
        }
        // Attack: reaches `floor` at the span start.
        for i in 0..attack.min(s) {
            let t = (i + 1) as f32 / (attack + 1) as f32;
            set(&mut gain[s - 1 - i], floor + (1.0 - floor) * t);
        }
        // Release: back to full level over `release` frames after the span.
        for i in 0..release.min(n - e) {
            let t = (i + 1) as f32 / (release + 1) as f32;
            set(&mut gain[e + i], floor + (1.0 - floor) * t);
        }
    }
    let mut out = background.samples.clone();
    for (frame, g) in out.chunks_exact_mut(ch).zip(&gain) {
        if *g < 1.0 {
            for s in frame {
                *s *= g;
            }
        }
    }
    Pcm::new(background.sample_rate, background.channels, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(x: f32) -> f32 {
        20.0 * x.abs().log10()
    }

    #[test]
    fn spans_are_ducked_with_ramps_and_the_rest_is_untouched() {
        let rate = 48_000;
        let n = rate as usize * 2;
        let samples: Vec<f32> = (0..n * 2)
            .map(|i| 0.5 * ((i / 2) as f32 * 0.01).sin())
            .collect();
        let bg = Pcm::new(rate, 2, samples.clone()).unwrap();
        let (s, e) = (48_000i64, 72_000i64);
        let out = duck(&bg, &[(s, e)], 12.0).unwrap();
        assert_eq!(out.frames(), bg.frames());
        let attack = (ATTACK_SECS * rate as f32) as usize;
        let release = (RELEASE_SECS * rate as f32) as usize;
        for f in 0..n {
            let (a, b) = (samples[f * 2], out.samples[f * 2]);
            if f < s as usize - attack || f >= e as usize + release {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "frame {f} changed outside the ramps"
                );
            } else if (s as usize..e as usize).contains(&f) && a.abs() > 1e-3 {
                assert!((db(b) - db(a) + 12.0).abs() < 0.01, "frame {f}");
            } else {
                assert!(b.abs() <= a.abs() + 1e-7);
            }
        }
        // The ramps are monotonic: no click.
        let gain = |f: usize| out.samples[f * 2] / samples[f * 2];
        let probe: Vec<f32> = (s as usize - attack..s as usize)
            .filter(|&f| samples[f * 2].abs() > 1e-2)
            .map(gain)
            .collect();
        assert!(probe.windows(2).all(|w| w[1] <= w[0] + 1e-5));
    }

    #[test]
    fn hostile_spans_and_depths() {
        let bg = Pcm::new(8_000, 1, vec![0.25; 800]).unwrap();
        for spans in [
            vec![(i64::MIN, i64::MAX)],
            vec![(900, 100)],
            vec![(-50, -10)],
            vec![(799, 800)],
        ] {
            let out = duck(&bg, &spans, 6.0).unwrap();
            assert_eq!(out.frames(), 800);
        }
        assert!(duck(&bg, &[(0, 10)], f32::NAN).is_err());
        assert!(duck(&bg, &[(0, 10)], 61.0).is_err());
        assert!(duck(&bg, &vec![(0, 1); MAX_SPANS + 1], 6.0).is_err());
        // Zero depth changes nothing.
        assert_eq!(duck(&bg, &[(0, 800)], 0.0).unwrap().samples, bg.samples);
    }
}

//! PNG and animated GIF encoding, and atomic writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::image::Image;
use crate::{PlotError, Result};

/// The PNG bytes of `img` (RGBA8).
pub fn encode_png(img: &Image) -> Result<Vec<u8>> {
    let err = |e: png::EncodingError| PlotError::Png {
        path: PathBuf::from("<memory>"),
        detail: e.to_string(),
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width as u32, img.height as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(err)?;
        w.write_image_data(&img.pixels).map_err(err)?;
    }
    Ok(out)
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so readers
/// never see a partial file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

pub fn write_png(path: &Path, img: &Image) -> Result<()> {
    let bytes = encode_png(img).map_err(|e| match e {
        PlotError::Png { detail, .. } => PlotError::Png {
            path: path.to_path_buf(),
            detail,
        },
        e => e,
    })?;
    write_atomic(path, &bytes)
}

/// One global palette for all frames: the exact colours when there are at most 256, else the
/// 256 most frequent colours at 5 bits per channel. Returns (palette, colour -> index).
fn palette(frames: &[Image]) -> (Vec<u8>, HashMap<[u8; 3], u8>) {
    let mut counts: HashMap<[u8; 3], u64> = HashMap::new();
    for f in frames {
        for p in f.pixels.chunks_exact(4) {
            *counts.entry([p[0], p[1], p[2]]).or_insert(0) += 1;
        }
    }
    if counts.len() <= 256 {
        let mut colours: Vec<[u8; 3]> = counts.keys().copied().collect();
        colours.sort();
        let index = colours
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u8))
            .collect();
        return (colours.concat(), index);
    }
    let mut bins: HashMap<[u8; 3], (u64, [u64; 3])> = HashMap::new();
    for (c, &n) in &counts {
        let key = [c[0] >> 3, c[1] >> 3, c[2] >> 3];
        let e = bins.entry(key).or_insert((0, [0; 3]));
        e.0 += n;
        for k in 0..3 {
            e.1[k] += n * u64::from(c[k]);
        }
    }
    let mut bins: Vec<(u64, [u8; 3])> = bins
        .into_values()
        .map(|(n, s)| (n, std::array::from_fn(|k| (s[k] / n) as u8)))
        .collect();
    bins.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let colours: Vec<[u8; 3]> = bins.iter().take(256).map(|b| b.1).collect();
    let index = counts
        .keys()
        .map(|&c| {
            let best = colours
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| {
                    (0..3)
                        .map(|k| (i32::from(p[k]) - i32::from(c[k])).pow(2))
                        .sum::<i32>()
                })
                .map_or(0, |(i, _)| i as u8);
            (c, best)
        })
        .collect();
    (colours.concat(), index)
}

/// The bytes of an animated GIF of `frames` (all the size of the first), `delay` hundredths
/// of a second apart, looping forever.
pub fn encode_gif(frames: &[Image], delay: u16) -> Result<Vec<u8>> {
    let first = frames.first().ok_or_else(|| PlotError::Invalid {
        what: "gif",
        detail: "no frames".into(),
    })?;
    let (w, h) = (first.width, first.height);
    if frames.iter().any(|f| (f.width, f.height) != (w, h)) || w > 65535 || h > 65535 {
        return Err(PlotError::Invalid {
            what: "gif",
            detail: format!("frames must share one size up to 65535 px (first {w} x {h})"),
        });
    }
    let err = |e: gif::EncodingError| PlotError::Gif {
        path: PathBuf::from("<memory>"),
        detail: e.to_string(),
    };
    let (pal, index) = palette(frames);
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w as u16, h as u16, &pal).map_err(err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(err)?;
        for f in frames {
            let buffer: Vec<u8> = f
                .pixels
                .chunks_exact(4)
                .map(|p| index[&[p[0], p[1], p[2]]])
                .collect();
            let frame = gif::Frame {
                width: w as u16,
                height: h as u16,
                delay,
                buffer: buffer.into(),
                ..Default::default()
            };
            enc.write_frame(&frame).map_err(err)?;
        }
    }
    Ok(out)
}

pub fn write_gif(path: &Path, frames: &[Image], delay: u16) -> Result<()> {
    let bytes = encode_gif(frames, delay).map_err(|e| match e {
        PlotError::Gif { detail, .. } => PlotError::Gif {
            path: path.to_path_buf(),
            detail,
        },
        e => e,
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colormap::Colormap;
    use crate::image::{BLACK, WHITE, field_image};

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lemur-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn png_round_trips() {
        let data: Vec<f32> = (0..35).map(|v| (v as f32).sin()).collect();
        let img = field_image(&data, 5, 7, Colormap::Magma, -1.0, 1.0, 3);
        let dir = scratch("png");
        let path = dir.join("f.png");
        write_png(&path, &img).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (21, 15));
        assert_eq!(&buf[..info.buffer_size()], img.pixels.as_slice());
        // Nothing but the file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let bad = dir.join("missing-dir").join("f.png");
        let e = write_png(&bad, &img).unwrap_err().to_string();
        assert!(e.contains("missing-dir"), "{e}");
    }

    fn decode_gif(bytes: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
        let mut opts = gif::DecodeOptions::new();
        opts.set_color_output(gif::ColorOutput::RGBA);
        let mut dec = opts.read_info(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(f) = dec.read_next_frame().unwrap() {
            out.push((f.width, f.height, f.buffer.to_vec()));
        }
        out
    }

    #[test]
    fn gif_frames_keep_exact_colours_when_few() {
        let frames: Vec<Image> = (0..3)
            .map(|k| {
                let mut img = Image::new(10, 6, WHITE);
                img.fill_rect(k, 1, 3, 3, BLACK);
                img
            })
            .collect();
        let bytes = encode_gif(&frames, 20).unwrap();
        let dec = decode_gif(&bytes);
        assert_eq!(dec.len(), 3);
        for ((w, h, px), f) in dec.iter().zip(&frames) {
            assert_eq!((*w, *h), (10, 6));
            assert_eq!(px, &f.pixels);
        }
    }

    #[test]
    fn gif_of_many_colours_stays_close() {
        let data: Vec<f32> = (0..64 * 64).map(|v| v as f32).collect();
        let frames = vec![
            field_image(&data, 64, 64, Colormap::Viridis, 0.0, 4095.0, 1),
            field_image(&data, 64, 64, Colormap::RdBu, 0.0, 4095.0, 1),
        ];
        let dir = scratch("gif");
        let path = dir.join("a.gif");
        write_gif(&path, &frames, 10).unwrap();
        let dec = decode_gif(&std::fs::read(&path).unwrap());
        assert_eq!(dec.len(), 2);
        for ((_, _, px), f) in dec.iter().zip(&frames) {
            let worst = px
                .iter()
                .zip(&f.pixels)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap();
            assert!(worst <= 24, "quantisation error {worst}");
        }
        assert!(encode_gif(&[], 1).is_err());
    }
}

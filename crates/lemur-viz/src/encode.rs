//! PNG and animated GIF encoding, and atomic file writes.
//!
//! GIF frames are quantised to at most 256 colours each (a local palette per frame): a frame
//! with at most 256 distinct colours keeps them exactly; otherwise the colours that cover at
//! least 0.5% of the pixels (backgrounds, text, lines; at most 64) keep exact entries and
//! the rest of the palette comes from a count-weighted median cut of the remaining colours,
//! each distinct colour mapped once to its nearest entry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::image::Image;

/// Why an image could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("image is empty ({width} x {height})")]
    Empty { width: usize, height: usize },
    #[error("image is {width} x {height}, larger than the format allows")]
    TooLarge { width: usize, height: usize },
    #[error("image has {len} bytes, not 4 x {width} x {height}")]
    BadBuffer {
        width: usize,
        height: usize,
        len: usize,
    },
    #[error("a GIF needs at least one frame")]
    NoFrames,
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
    #[error("GIF encoding: {0}")]
    Gif(#[from] gif::EncodingError),
}

/// Errors of writing an image file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode {}: {source}", path.display())]
    Encode { path: PathBuf, source: EncodeError },
}

impl VizError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            VizError::Io { path, .. } | VizError::Encode { path, .. } => path,
        }
    }
}

fn check(img: &Image, max: usize) -> Result<(), EncodeError> {
    let (width, height) = (img.width, img.height);
    if width == 0 || height == 0 {
        return Err(EncodeError::Empty { width, height });
    }
    if width > max || height > max {
        return Err(EncodeError::TooLarge { width, height });
    }
    if img.pixels.len() != 4 * width * height {
        return Err(EncodeError::BadBuffer {
            width,
            height,
            len: img.pixels.len(),
        });
    }
    Ok(())
}

/// The image as an RGBA8 PNG file's bytes.
pub fn encode_png(img: &Image) -> Result<Vec<u8>, EncodeError> {
    check(img, u32::MAX as usize)?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, img.width as u32, img.height as u32);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&img.pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Writes the image as a PNG file, atomically (see [`write_atomic`]).
pub fn write_png(path: impl AsRef<Path>, img: &Image) -> Result<(), VizError> {
    let path = path.as_ref();
    let bytes = encode_png(img).map_err(|source| VizError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// The frames as an animated GIF file's bytes, looping forever, each frame shown for
/// `delay_centiseconds` hundredths of a second. The canvas is as large as the largest frame;
/// a smaller frame is drawn at the top-left corner and padded with its own top-left pixel's
/// colour (keep frames the same size, e.g. with fixed colour-bar ranges, for a steady
/// layout). Transparency is not kept (alpha is ignored).
pub fn encode_gif(frames: &[Image], delay_centiseconds: u16) -> Result<Vec<u8>, EncodeError> {
    if frames.is_empty() {
        return Err(EncodeError::NoFrames);
    }
    for f in frames {
        check(f, u16::MAX as usize)?;
    }
    let w = frames.iter().map(|f| f.width).max().unwrap_or(1);
    let h = frames.iter().map(|f| f.height).max().unwrap_or(1);
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, w as u16, h as u16, &[])?;
        encoder.set_repeat(gif::Repeat::Infinite)?;
        for f in frames {
            let padded;
            let f = if (f.width, f.height) == (w, h) {
                f
            } else {
                let corner = f.get(0, 0).unwrap_or(crate::Rgba::WHITE);
                let mut canvas = Image::new(w, h, corner);
                canvas.blit(f, 0, 0);
                padded = canvas;
                &padded
            };
            let (palette, indices) = quantise(f);
            let frame = gif::Frame {
                delay: delay_centiseconds,
                width: w as u16,
                height: h as u16,
                palette: Some(palette),
                buffer: Cow::Owned(indices),
                ..gif::Frame::default()
            };
            encoder.write_frame(&frame)?;
        }
    }
    Ok(out)
}

/// Writes the frames as an animated GIF file (see [`encode_gif`]), atomically.
pub fn write_gif(
    path: impl AsRef<Path>,
    frames: &[Image],
    delay_centiseconds: u16,
) -> Result<(), VizError> {
    let path = path.as_ref();
    let bytes = encode_gif(frames, delay_centiseconds).map_err(|source| VizError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically: to a hidden temporary file in the same directory,
/// synced, then renamed over `path`. On failure the temporary file is removed and the error
/// names `path`.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), VizError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = path.as_ref();
    let err = |source| VizError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Packs RGB into a `u32` key (alpha dropped).
fn key(px: &[u8]) -> u32 {
    u32::from(px[0]) << 16 | u32::from(px[1]) << 8 | u32::from(px[2])
}

fn unkey(k: u32) -> [u8; 3] {
    [(k >> 16) as u8, (k >> 8) as u8, k as u8]
}

/// A palette (`[r, g, b, ...]`, at most 256 entries) and one index per pixel.
fn quantise(img: &Image) -> (Vec<u8>, Vec<u8>) {
    // Histogram of distinct colours. Runs of equal pixels are common; skip the lookup for them.
    let mut counts: HashMap<u32, u32> = HashMap::new();
    let mut last = u32::MAX;
    let mut run = 0u32;
    for px in img.pixels.chunks_exact(4) {
        let k = key(px);
        if k == last {
            run += 1;
        } else {
            if run > 0 {
                *counts.entry(last).or_insert(0) += run;
            }
            last = k;
            run = 1;
        }
    }
    if run > 0 {
        *counts.entry(last).or_insert(0) += run;
    }
    let mut colours: Vec<(u32, u32)> = counts.into_iter().collect();
    colours.sort_unstable();

    let palette: Vec<[u8; 3]> = if colours.len() <= 256 {
        colours.iter().map(|&(k, _)| unkey(k)).collect()
    } else {
        let total: u64 = colours.iter().map(|c| u64::from(c.1)).sum();
        let mut by_count = colours.clone();
        by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let exact: Vec<u32> = by_count
            .iter()
            .take(64)
            .take_while(|c| u64::from(c.1) * 200 >= total)
            .map(|c| c.0)
            .collect();
        let rest: Vec<([u8; 3], u32)> = colours
            .iter()
            .filter(|c| !exact.contains(&c.0))
            .map(|&(k, n)| (unkey(k), n))
            .collect();
        let mut palette: Vec<[u8; 3]> = exact.iter().map(|&k| unkey(k)).collect();
        palette.extend(median_cut(rest, 256 - palette.len()));
        palette
    };

    // Map each distinct colour once, then every pixel through the map.
    let lookup: HashMap<u32, u8> = colours
        .iter()
        .map(|&(k, _)| {
            let c = unkey(k);
            let nearest = palette
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| {
                    (0..3)
                        .map(|i| (i32::from(p[i]) - i32::from(c[i])).pow(2))
                        .sum::<i32>()
                })
                .map_or(0, |(i, _)| i as u8);
            (k, nearest)
        })
        .collect();
    let mut indices = Vec::with_capacity(img.width * img.height);
    let (mut last, mut last_index) = (u32::MAX, 0u8);
    for px in img.pixels.chunks_exact(4) {
        let k = key(px);
        if k != last {
            last = k;
            last_index = lookup[&k];
        }
        indices.push(last_index);
    }
    (palette.concat(), indices)
}

/// Up to `n` colours for `colours` (with counts): the box with the widest channel range
/// (weighted by its pixel count) is split at the count-weighted median of that channel until
/// there are `n` boxes; each box gives its count-weighted mean colour.
fn median_cut(colours: Vec<([u8; 3], u32)>, n: usize) -> Vec<[u8; 3]> {
    if colours.is_empty() || n == 0 {
        return Vec::new();
    }
    struct Cube {
        colours: Vec<([u8; 3], u32)>,
        channel: usize,
        score: u64,
    }
    fn cube(colours: Vec<([u8; 3], u32)>) -> Cube {
        let mut lo = [255u8; 3];
        let mut hi = [0u8; 3];
        let mut count = 0u64;
        for (c, n) in &colours {
            for i in 0..3 {
                lo[i] = lo[i].min(c[i]);
                hi[i] = hi[i].max(c[i]);
            }
            count += u64::from(*n);
        }
        let channel = (0..3).max_by_key(|&i| hi[i] - lo[i]).unwrap_or(0);
        let range = u64::from(hi[channel] - lo[channel]);
        let score = if colours.len() < 2 {
            0
        } else {
            range * range * (count as f64).sqrt() as u64 + 1
        };
        Cube {
            colours,
            channel,
            score,
        }
    }
    let mut cubes = vec![cube(colours)];
    while cubes.len() < n {
        let Some((i, _)) = cubes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.score > 0)
            .max_by_key(|(_, c)| c.score)
        else {
            break;
        };
        let mut c = cubes.swap_remove(i);
        let ch = c.channel;
        c.colours.sort_unstable_by_key(|(col, _)| col[ch]);
        let total: u64 = c.colours.iter().map(|x| u64::from(x.1)).sum();
        let mut acc = 0u64;
        let mut split = 1;
        for (j, (_, n)) in c.colours.iter().enumerate() {
            acc += u64::from(*n);
            if acc * 2 >= total {
                split = j + 1;
                break;
            }
        }
        let split = split.clamp(1, c.colours.len() - 1);
        let right = c.colours.split_off(split);
        cubes.push(cube(c.colours));
        cubes.push(cube(right));
    }
    cubes
        .iter()
        .map(|c| {
            let mut sum = [0u64; 3];
            let mut count = 0u64;
            for (col, n) in &c.colours {
                for i in 0..3 {
                    sum[i] += u64::from(col[i]) * u64::from(*n);
                }
                count += u64::from(*n);
            }
            let count = count.max(1);
            [0, 1, 2].map(|i| ((sum[i] + count / 2) / count) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Colormap, Rgba, field_image};

    fn test_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lemur-viz-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn sample(w: usize, h: usize) -> Image {
        let mut img = Image::new(w, h, Rgba::WHITE);
        for y in 0..h {
            for x in 0..w {
                img.set(
                    x as i64,
                    y as i64,
                    Rgba::new((x * 7) as u8, (y * 5) as u8, (x ^ y) as u8, (200 + x) as u8),
                );
            }
        }
        img
    }

    #[test]
    fn png_round_trip() {
        let img = sample(37, 21);
        let bytes = encode_png(&img).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (37, 21));
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(&buf[..info.buffer_size()], &img.pixels[..]);
        assert!(matches!(
            encode_png(&Image::new(0, 3, Rgba::WHITE)),
            Err(EncodeError::Empty { .. })
        ));
    }

    /// Decodes a GIF into RGBA frames.
    fn decode_gif(bytes: &[u8]) -> (u16, u16, Vec<(u16, Vec<u8>)>) {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(std::io::Cursor::new(bytes)).unwrap();
        let (w, h) = (decoder.width(), decoder.height());
        assert_eq!(decoder.repeat(), gif::Repeat::Infinite);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.read_next_frame().unwrap() {
            assert_eq!(
                (frame.width, frame.height, frame.left, frame.top),
                (w, h, 0, 0)
            );
            frames.push((frame.delay, frame.buffer.to_vec()));
        }
        (w, h, frames)
    }

    fn opaque(img: &Image) -> Vec<u8> {
        img.pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect()
    }

    #[test]
    fn gif_exact_when_few_colours() {
        let data: Vec<f32> = (0..64 * 48).map(|i| (i % 64) as f32 / 63.0).collect();
        let a = field_image(&data, 48, 64, Colormap::Viridis, 0.0, 1.0, 1);
        let mut b = field_image(&data, 48, 64, Colormap::Magma, 0.0, 1.0, 1);
        b.draw_text(2, 2, "t = 3", Rgba::WHITE, 1);
        b.fill_rect(10, 20, 5, 5, Rgba::new(1, 2, 3, 0)); // alpha is dropped
        assert!(a.count_colours(256) <= 256 && b.count_colours(256) <= 256);
        let bytes = encode_gif(&[a.clone(), b.clone(), a.clone()], 25).unwrap();
        let (w, h, frames) = decode_gif(&bytes);
        assert_eq!((w, h, frames.len()), (64, 48, 3));
        assert!(frames.iter().all(|f| f.0 == 25));
        assert_eq!(frames[0].1, opaque(&a));
        assert_eq!(frames[1].1, opaque(&b));
        assert_eq!(frames[2].1, opaque(&a));
    }

    #[test]
    fn gif_many_colours_is_close_and_fast() {
        // Five 128 x 128 panels of smooth fields: far more than 256 colours.
        let (n, panels) = (128, 5);
        let mut frame = Image::new(panels * (n + 8), n + 30, Rgba::WHITE);
        for (p, cmap) in [
            Colormap::Viridis,
            Colormap::Viridis,
            Colormap::Viridis,
            Colormap::RdBuR,
            Colormap::Magma,
        ]
        .into_iter()
        .enumerate()
        {
            let data: Vec<f32> = (0..n * n)
                .map(|i| ((i % n) as f32 * 0.05 + p as f32).sin() * ((i / n) as f32 * 0.03).cos())
                .collect();
            frame.blit(
                &field_image(&data, n, n, cmap, -1.0, 1.0, 1),
                (p * (n + 8)) as i64,
                24,
            );
            frame.draw_text((p * (n + 8)) as i64, 4, "ensemble mean", Rgba::BLACK, 2);
        }
        assert!(frame.count_colours(10_000) > 1000);
        let start = std::time::Instant::now();
        let bytes = encode_gif(std::slice::from_ref(&frame), 10).unwrap();
        let elapsed = start.elapsed();
        // Generous for unoptimised test builds; release builds take a few milliseconds.
        assert!(elapsed.as_secs_f64() < 2.0, "{elapsed:?}");
        let (_, _, frames) = decode_gif(&bytes);
        let got = &frames[0].1;
        let want = opaque(&frame);
        let mut worst = 0;
        let mut sum = 0u64;
        for (g, w) in got.chunks_exact(4).zip(want.chunks_exact(4)) {
            let d = (0..3)
                .map(|i| (i32::from(g[i]) - i32::from(w[i])).abs())
                .max()
                .unwrap();
            worst = worst.max(d);
            sum += d as u64;
        }
        let mean = sum as f64 / (frame.width * frame.height) as f64;
        assert!(mean < 2.0 && worst <= 24, "mean {mean}, worst {worst}");
        // Background and text stay exact.
        assert_eq!(&got[..4], &[255, 255, 255, 255]);
        let black = want
            .chunks_exact(4)
            .position(|p| p == [0, 0, 0, 255])
            .unwrap();
        assert_eq!(&got[4 * black..4 * black + 4], &[0, 0, 0, 255]);
    }

    #[test]
    fn gif_pads_smaller_frames() {
        let big = Image::new(6, 4, Rgba::BLACK);
        let small = Image::new(3, 2, Rgba::new(10, 20, 30, 255));
        let (w, h, frames) = decode_gif(&encode_gif(&[small.clone(), big], 10).unwrap());
        assert_eq!((w, h, frames.len()), (6, 4, 2));
        assert!(frames[0].1.chunks_exact(4).all(|p| p == [10, 20, 30, 255]));
        assert!(frames[1].1.chunks_exact(4).all(|p| p == [0, 0, 0, 255]));
        assert!(matches!(encode_gif(&[], 10), Err(EncodeError::NoFrames)));
        assert!(matches!(
            encode_gif(&[Image::new(70_000, 1, Rgba::WHITE)], 10),
            Err(EncodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn atomic_writes() {
        let dir = test_dir("atomic");
        let img = sample(8, 8);
        let png_path = dir.join("field.png");
        write_png(&png_path, &img).unwrap();
        write_png(&png_path, &img).unwrap(); // overwrite
        write_gif(dir.join("anim.gif"), &[img.clone(), img.clone()], 5).unwrap();
        assert_eq!(listing(&dir), ["anim.gif", "field.png"]);
        assert_eq!(fs::read(&png_path).unwrap(), encode_png(&img).unwrap());
        assert_eq!(
            decode_gif(&fs::read(dir.join("anim.gif")).unwrap()).2.len(),
            2
        );

        // Renaming onto a directory fails after the temporary file exists: it is cleaned up.
        fs::create_dir(dir.join("taken.png")).unwrap();
        let e = write_png(dir.join("taken.png"), &img).unwrap_err();
        assert!(e.to_string().contains("taken.png"), "{e}");
        assert_eq!(listing(&dir), ["anim.gif", "field.png", "taken.png"]);

        // A directory that does not exist.
        let missing = dir.join("no-such-dir").join("out.png");
        let e = write_png(&missing, &img).unwrap_err();
        assert_eq!(e.path(), missing);
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        let e = write_gif(&missing, std::slice::from_ref(&img), 5).unwrap_err();
        assert!(matches!(e, VizError::Io { .. }) && e.path() == missing);
        // An encoding error names the file too.
        let e = write_gif(dir.join("empty.gif"), &[], 5).unwrap_err();
        assert!(
            e.to_string().contains("empty.gif") && matches!(e, VizError::Encode { .. }),
            "{e}"
        );
        assert_eq!(listing(&dir), ["anim.gif", "field.png", "taken.png"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}

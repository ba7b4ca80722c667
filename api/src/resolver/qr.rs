//! QR codes of GS1 Digital Link URIs (ISO/IEC 18004, the symbology GS1 Digital Link labels
//! use), rendered from one module matrix as SVG and as a 1-bit PNG, both with the standard's
//! quiet zone of four modules on every side (ISO/IEC 18004 §6.3.8).
//!
//! The encoder is the `qrcode` crate without its image stack: it gives the module matrix, and
//! both renderings here draw exactly those modules, so a test can check each against it.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the symbol on every side (ISO/IEC 18004 §6.3.8).
pub const QUIET_ZONE_MODULES: usize = 4;
/// Pixels per module, smallest and largest taken (PNG; the SVG's nominal size).
pub const MODULE_PX: std::ops::RangeInclusive<u32> = 1..=32;
/// Pixels per module when none is asked for.
pub const MODULE_PX_DEFAULT: u32 = 8;
/// Widest image produced, in pixels (a version 40 symbol at 20 px per module).
pub const IMAGE_PX_MAX: usize = 4_096;

/// Why a QR code cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// Not one of `L`, `M`, `Q`, `H`.
    #[error("ec {0:?} is not an error correction level: use L, M, Q or H")]
    Level(String),
    /// Module size out of range or not a number.
    #[error("module {0:?} must be a whole number of pixels in 1..=32")]
    ModuleSize(String),
    /// The data does not fit a QR code at that level.
    #[error("the Digital Link does not fit in a QR code at level {0}: {1}")]
    TooLong(char, String),
    /// The image would be wider than [`IMAGE_PX_MAX`].
    #[error("the image would be {0} pixels wide; at most {IMAGE_PX_MAX}: ask for smaller modules")]
    TooWide(usize),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// An error correction level (ISO/IEC 18004 §6.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(EcLevel);

impl Level {
    /// `M` (15 % recovery): the GS1 General Specifications' recommendation for QR codes on
    /// trade items.
    pub const DEFAULT: Self = Self(EcLevel::M);

    /// Parses `L`, `M`, `Q` or `H` (either case).
    ///
    /// # Errors
    /// [`QrError::Level`].
    pub fn parse(text: &str) -> Result<Self, QrError> {
        match text {
            "L" | "l" => Ok(Self(EcLevel::L)),
            "M" | "m" => Ok(Self(EcLevel::M)),
            "Q" | "q" => Ok(Self(EcLevel::Q)),
            "H" | "h" => Ok(Self(EcLevel::H)),
            other => Err(QrError::Level(other.chars().take(16).collect())),
        }
    }

    /// Its letter.
    #[must_use]
    pub fn letter(self) -> char {
        match self.0 {
            EcLevel::L => 'L',
            EcLevel::M => 'M',
            EcLevel::Q => 'Q',
            EcLevel::H => 'H',
        }
    }
}

/// Pixels per module, within [`MODULE_PX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModulePx(u32);

impl ModulePx {
    /// The default size.
    pub const DEFAULT: Self = Self(MODULE_PX_DEFAULT);

    /// Parses a whole number of pixels in [`MODULE_PX`].
    ///
    /// # Errors
    /// [`QrError::ModuleSize`].
    pub fn parse(text: &str) -> Result<Self, QrError> {
        text.parse::<u32>()
            .ok()
            .filter(|px| MODULE_PX.contains(px))
            .map(Self)
            .ok_or_else(|| QrError::ModuleSize(text.chars().take(16).collect()))
    }

    /// The number of pixels.
    #[must_use]
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The modules of one QR symbol, row by row, `true` for dark; no quiet zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    /// Encodes `data` (byte mode or better, as the encoder chooses) at `level`.
    ///
    /// # Errors
    /// [`QrError::TooLong`] if it does not fit version 40.
    pub fn encode(data: &str, level: Level) -> Result<Self, QrError> {
        let code = QrCode::with_error_correction_level(data.as_bytes(), level.0)
            .map_err(|e| QrError::TooLong(level.letter(), e.to_string()))?;
        let width = code.width();
        let dark = code
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        Ok(Self { width, dark })
    }

    /// Modules per side (21 for version 1, up to 177 for version 40).
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the module at column `x`, row `y` is dark (`false` outside the symbol).
    #[must_use]
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// Modules per side with the quiet zone.
    fn outer(&self) -> usize {
        self.width + 2 * QUIET_ZONE_MODULES
    }

    /// An SVG image: the viewBox counts modules (quiet zone included), the nominal size is
    /// `module` pixels per module, and the dark modules are one path of unit squares at their
    /// coordinates (`M{x} {y}h1v1h-1z`, x and y counted with the quiet zone).
    #[must_use]
    pub fn to_svg(&self, module: ModulePx) -> String {
        let outer = self.outer();
        let px = outer * usize::try_from(module.get()).unwrap_or(1);
        let mut path = String::with_capacity(self.dark.len() * 8);
        for y in 0..self.width {
            for x in 0..self.width {
                if self.is_dark(x, y) {
                    path.push_str(&format!(
                        "M{} {}h1v1h-1z",
                        x + QUIET_ZONE_MODULES,
                        y + QUIET_ZONE_MODULES
                    ));
                }
            }
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{px}\" \
             height=\"{px}\" viewBox=\"0 0 {outer} {outer}\" shape-rendering=\"crispEdges\">\
             <rect width=\"{outer}\" height=\"{outer}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>\n"
        )
    }

    /// A PNG image: 1-bit greyscale, `module` pixels per module, quiet zone included.
    ///
    /// # Errors
    /// [`QrError::TooWide`] beyond [`IMAGE_PX_MAX`], [`QrError::Png`] if encoding fails.
    pub fn to_png(&self, module: ModulePx) -> Result<Vec<u8>, QrError> {
        let scale = usize::try_from(module.get()).unwrap_or(1);
        let side = self.outer() * scale;
        if side > IMAGE_PX_MAX {
            return Err(QrError::TooWide(side));
        }
        let side_u32 = u32::try_from(side).map_err(|_| QrError::TooWide(side))?;
        // One bit per pixel, most significant first, 1 = white (PNG greyscale, bit depth 1).
        let row_bytes = side.div_ceil(8);
        let mut pixels = vec![0u8; row_bytes * side];
        for py in 0..side {
            let y = (py / scale).checked_sub(QUIET_ZONE_MODULES);
            for px in 0..side {
                let x = (px / scale).checked_sub(QUIET_ZONE_MODULES);
                let dark = matches!((x, y), (Some(x), Some(y)) if self.is_dark(x, y));
                if !dark {
                    pixels[py * row_bytes + px / 8] |= 0x80 >> (px % 8);
                }
            }
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, side_u32, side_u32);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::One);
            let mut writer = encoder
                .write_header()
                .map_err(|e| QrError::Png(e.to_string()))?;
            writer
                .write_image_data(&pixels)
                .map_err(|e| QrError::Png(e.to_string()))?;
            writer.finish().map_err(|e| QrError::Png(e.to_string()))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "https://trace.example.cn/01/09520123456788/10/ABC123/21/12345";

    /// The dark modules an SVG of [`Matrix::to_svg`] draws, read back from its path.
    fn svg_modules(svg: &str, width: usize) -> Vec<bool> {
        let d = svg
            .split("d=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a path");
        let mut dark = vec![false; width * width];
        for square in d.split('M').filter(|s| !s.is_empty()) {
            let coordinates = square.strip_suffix("h1v1h-1z").expect("a unit square");
            let (x, y) = coordinates.split_once(' ').expect("x y");
            let x: usize = x.parse::<usize>().expect("x") - QUIET_ZONE_MODULES;
            let y: usize = y.parse::<usize>().expect("y") - QUIET_ZONE_MODULES;
            dark[y * width + x] = true;
        }
        dark
    }

    /// The dark modules a PNG of [`Matrix::to_png`] shows, sampled at each module's centre.
    fn png_modules(png_bytes: &[u8], width: usize, scale: usize) -> Vec<bool> {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buffer = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut buffer).expect("a frame");
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        let side = (width + 2 * QUIET_ZONE_MODULES) * scale;
        assert_eq!((info.width as usize, info.height as usize), (side, side));
        let pixel_dark =
            |px: usize, py: usize| buffer[py * info.line_size + px / 8] & (0x80 >> (px % 8)) == 0;
        // The quiet zone is light all round.
        for i in 0..side {
            for edge in [0, side - 1] {
                assert!(!pixel_dark(i, edge) && !pixel_dark(edge, i));
            }
        }
        let mut dark = vec![false; width * width];
        for y in 0..width {
            for x in 0..width {
                let centre = |m: usize| (m + QUIET_ZONE_MODULES) * scale + scale / 2;
                dark[y * width + x] = pixel_dark(centre(x), centre(y));
            }
        }
        dark
    }

    #[test]
    fn svg_and_png_draw_exactly_the_encoders_modules() {
        for (level, scale) in [("L", 1), ("M", 3), ("Q", 8), ("H", 5)] {
            let level = Level::parse(level).expect("level");
            let module = ModulePx::parse(&scale.to_string()).expect("module");
            let code = QrCode::with_error_correction_level(URI, level.0).expect("fits");
            let expected: Vec<bool> = code.to_colors().iter().map(|c| *c == Color::Dark).collect();
            let matrix = Matrix::encode(URI, level).expect("fits");
            assert_eq!(matrix.width(), code.width());
            assert_eq!(matrix.dark, expected);
            // The finder pattern's corner (ISO/IEC 18004 §6.3.3) is dark: the matrix is not
            // transposed or inverted.
            assert!(matrix.is_dark(0, 0) && matrix.is_dark(6, 6) && !matrix.is_dark(7, 7));
            let svg = matrix.to_svg(module);
            assert_eq!(svg_modules(&svg, matrix.width()), expected);
            let png_bytes = matrix.to_png(module).expect("png");
            assert_eq!(png_modules(&png_bytes, matrix.width(), scale), expected);
        }
    }

    #[test]
    fn higher_levels_need_bigger_symbols_and_limits_hold() {
        let low = Matrix::encode(URI, Level::parse("L").expect("L")).expect("fits");
        let high = Matrix::encode(URI, Level::parse("H").expect("H")).expect("fits");
        assert!(high.width() > low.width());
        assert!(Level::parse("X").is_err());
        for bad in ["0", "33", "-1", "8px", ""] {
            assert!(ModulePx::parse(bad).is_err(), "{bad}");
        }
        let long = format!(
            "https://trace.example.cn/01/09520123456788/21/{}",
            "x".repeat(3_000)
        );
        assert!(matches!(
            Matrix::encode(&long, Level::DEFAULT),
            Err(QrError::TooLong('M', _))
        ));
        // Version 40 (177 modules) at 32 px per module is wider than the limit.
        let wide = "x".repeat(2_900);
        let matrix = Matrix::encode(&wide, Level::parse("L").expect("L")).expect("fits");
        assert_eq!(matrix.width(), 177);
        assert_eq!(
            matrix.to_png(ModulePx::parse("32").expect("32")),
            Err(QrError::TooWide(185 * 32))
        );
    }
}

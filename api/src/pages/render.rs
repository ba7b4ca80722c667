//! The consumer page as HTML: hand-written templates (the page is small and a template crate
//! would not pay for itself), every value from data through [`escape`], the plot and the cold
//! chain drawn as inline SVG, Chinese or English.

use std::fmt::Write as _;

use serde_json::Value;

use crate::resolver::scans::{Reason, ScanWarning};

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// `?lang=` wins; else the first of `zh`/`en` in `Accept-Language` by quality; else
    /// English.
    #[must_use]
    pub fn choose(query: Option<&str>, accept_language: Option<&str>) -> Self {
        match query.map(str::to_ascii_lowercase).as_deref() {
            Some("zh") => return Self::Zh,
            Some("en") => return Self::En,
            _ => {}
        }
        let mut best: Option<(f32, Self)> = None;
        for range in accept_language.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let tag = parts.next().unwrap_or_default().to_ascii_lowercase();
            let quality = parts
                .find_map(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()))
                .unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("zh") => Self::Zh,
                Some("en") => Self::En,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, lang));
            }
        }
        best.map_or(Self::En, |(_, lang)| lang)
    }

    /// The BCP 47 tag.
    #[must_use]
    pub fn tag(self) -> &'static str {
        match self {
            Self::Zh => "zh-Hans",
            Self::En => "en",
        }
    }

    /// `zh` or `en` (the `?lang=` value).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }

    /// The other language (the switch).
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::Zh => Self::En,
            Self::En => Self::Zh,
        }
    }

    /// `(English, Chinese)` in this language.
    #[must_use]
    pub fn t(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Self::Zh => zh,
            Self::En => en,
        }
    }
}

/// HTML-escapes text for element content and double-quoted attribute values.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the page shows.
pub struct Page<'a> {
    pub lang: Lang,
    /// The Digital Link path (`/01/.../10/...[/21/...]`).
    pub path: String,
    pub gtin: String,
    pub lot: &'a str,
    pub serial: Option<&'a str>,
    /// The product owner's name and country.
    pub owner: Option<(String, String)>,
    /// [`super::journey`].
    pub journey: &'a Value,
    /// [`crate::documents::public_certificates`].
    pub certificates: &'a [Value],
    /// The warning when the serial's scans look like a copied code: which rules fired and
    /// the figures behind them.
    pub suspicious: Option<ScanWarning>,
    /// Scans counted for the serial.
    pub scans: Option<u64>,
}

fn text(value: &Value) -> String {
    escape(value.as_str().unwrap_or_default())
}

fn centi(c: f64) -> String {
    format!("{:.1}", c / 100.0)
}

/// `YYYY-MM-DD HH:MM` UTC of Unix ms.
fn when(ms: u64) -> String {
    let secs = ms / 1_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = gs1::epcis::canon::civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafaf7}\
main{max-width:42rem;margin:0 auto;padding:1rem}\
header{background:#1e5631;color:#fff;padding:1rem}header h1{margin:0;font-size:1.4rem}\
header a{color:#fff}nav{float:right}\
section{background:#fff;border:1px solid #d0d0c8;border-radius:.5rem;padding:.75rem 1rem;margin:1rem 0}\
h2{font-size:1.1rem;margin:.2rem 0 .5rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem 1rem;margin:0}\
dt{font-weight:600}dd{margin:0}ol{padding-left:1.2rem}li{margin:.4rem 0}\
.warn{background:#fff3cd;border-color:#8a6d00}.ok{color:#1e5631;font-weight:700}.bad{color:#a4000f;font-weight:700}\
svg{max-width:100%;height:auto}small{color:#4a4a4a}a{color:#0b4f8a}\
a:focus,button:focus{outline:3px solid #f0a500}";

/// The warning's sentences, one per rule that fired ("scanned in 3 countries: CN, NL, TH",
/// "scanned from 9 networks", "scanned 120 times from 9 networks"). A capped list says "at
/// least".
#[must_use]
pub fn scan_warning_lines(l: Lang, w: &ScanWarning) -> Vec<String> {
    let at_least = |capped: bool| {
        if capped {
            l.t("at least ", "至少")
        } else {
            ""
        }
    };
    let networks = format!("{}{}", at_least(w.networks_capped), w.networks);
    w.reasons
        .iter()
        .map(|reason| match (reason, l) {
            (Reason::Countries, Lang::En) => format!(
                "Scanned in {}{} countries: {}.",
                at_least(w.countries_capped),
                w.countries.len(),
                w.countries.join(", ")
            ),
            (Reason::Countries, Lang::Zh) => format!(
                "已在{}{}个国家或地区被扫描：{}。",
                at_least(w.countries_capped),
                w.countries.len(),
                w.countries.join("、")
            ),
            (Reason::Prefixes, Lang::En) => format!("Scanned from {networks} networks."),
            (Reason::Prefixes, Lang::Zh) => format!("已从{networks}个网络被扫描。"),
            (Reason::Count, Lang::En) => {
                format!("Scanned {} times from {networks} networks.", w.count)
            }
            (Reason::Count, Lang::Zh) => {
                format!("已从{networks}个网络被扫描{}次。", w.count)
            }
        })
        .collect()
}

/// The page.
#[must_use]
pub fn page(p: &Page<'_>) -> String {
    let l = p.lang;
    let j = p.journey;
    let name = |lang: Lang| text(&j["product"]["name"][lang.code()]);
    let title = if name(l).is_empty() {
        escape(&p.gtin)
    } else {
        name(l)
    };
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"{tag}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · {lot}</title><style>{STYLE}</style></head><body>\
         <header><nav><a href=\"{path}?lang={other}\" hreflang=\"{other_tag}\" lang=\"{other_tag}\" id=\"lang-switch\">{other_label}</a></nav>\
         <h1>{title}</h1><div lang=\"{other_tag}\">{other_name}</div></header><main>",
        tag = l.tag(),
        lot = escape(p.lot),
        path = escape(&p.path),
        other = l.other().code(),
        other_tag = l.other().tag(),
        other_label = l.t("中文", "English"),
        other_name = name(l.other()),
    );
    if let Some(warning) = &p.suspicious {
        let _ = write!(
            html,
            "<section class=\"warn\" role=\"alert\" id=\"scan-warning\"><h2>{}</h2><ul>",
            l.t("Check this code", "请核实此码"),
        );
        for line in scan_warning_lines(l, warning) {
            let _ = write!(html, "<li>{}</li>", escape(&line));
        }
        let _ = write!(
            html,
            "</ul><p>{}</p></section>",
            l.t(
                "A genuine pack is scanned by a few people in one place. This code may have been copied: ask the seller.",
                "正品包装通常只在一地被少数人扫描。此码可能被复制，请向卖家核实。"
            ),
        );
    }
    // Product and lot.
    let _ = write!(
        html,
        "<section id=\"product\"><h2>{}</h2><dl><dt>{}</dt><dd>{}</dd><dt>GTIN</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>",
        l.t("Product", "产品"),
        l.t("Name", "名称"),
        title,
        escape(&p.gtin),
        l.t("Lot", "批号"),
        escape(p.lot),
    );
    if let Some(serial) = p.serial {
        let _ = write!(
            html,
            "<dt>{}</dt><dd>{}</dd>",
            l.t("Serial", "序列号"),
            escape(serial)
        );
        if let Some(count) = p.scans {
            let _ = write!(
                html,
                "<dt>{}</dt><dd>{count}</dd>",
                l.t("Scans", "扫描次数")
            );
        }
    }
    if let Some((owner, country)) = &p.owner {
        let _ = write!(
            html,
            "<dt>{}</dt><dd>{} ({})</dd>",
            l.t("Producer", "生产者"),
            escape(owner),
            escape(country)
        );
    }
    if let Some(band) = j["product"]["band_centi_c"].as_array() {
        let low = band.first().and_then(Value::as_f64).unwrap_or(0.0);
        let high = band.get(1).and_then(Value::as_f64).unwrap_or(0.0);
        let _ = write!(
            html,
            "<dt>{}</dt><dd>{} – {} °C</dd>",
            l.t("Keep at", "储存温度"),
            centi(low),
            centi(high)
        );
    }
    html.push_str("</dl></section>");
    origin(&mut html, p);
    timeline(&mut html, p);
    cold_chain(&mut html, p);
    certificates(&mut html, p);
    let _ = write!(
        html,
        "<section id=\"verify\" data-journey=\"/v1/public/lots/{gtin}/{lot}/journey\" data-lang=\"{code}\" aria-live=\"polite\">\
         <h2>{h}</h2><p id=\"verify-status\">{pending}</p><ul id=\"verify-steps\"></ul></section>\
         </main><script src=\"/pages/verify.js\" defer></script></body></html>",
        gtin = escape(&p.gtin),
        lot = escape(&urlencode(p.lot)),
        code = l.code(),
        h = l.t("Proof", "证明"),
        pending = l.t(
            "Checking the proof in this browser…",
            "正在本浏览器中核验证明……"
        ),
    );
    html
}

/// Percent-encodes a path segment.
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn origin(html: &mut String, p: &Page<'_>) {
    let l = p.lang;
    let j = p.journey;
    let _ = write!(
        html,
        "<section id=\"origin\"><h2>{}</h2><dl><dt>{}</dt><dd>{}</dd>",
        l.t("Origin", "产地"),
        l.t("Harvested", "采收日期"),
        text(&j["harvest_date"])
    );
    let plot = &j["plot"];
    if plot.is_object() {
        let _ = write!(
            html,
            "<dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{:.2} ha</dd></dl>",
            l.t("Plot", "地块"),
            text(&plot["name"]),
            l.t("Region", "地区"),
            text(&plot["country"]),
            l.t("Area", "面积"),
            plot["area_ha"].as_f64().unwrap_or(0.0),
        );
        plot_svg(html, &plot["geometry"], l);
    } else {
        html.push_str("</dl>");
    }
    html.push_str("</section>");
}

/// The plot drawn from its WGS84 GeoJSON geometry (a Point or a Polygon's outer ring),
/// longitude scaled by the cosine of the latitude so the shape is not stretched.
fn plot_svg(html: &mut String, geometry: &Value, l: Lang) {
    let corners: Vec<(f64, f64)> = match geometry["type"].as_str() {
        Some("Polygon") => geometry["coordinates"][0]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c[0].as_f64()?, c[1].as_f64()?)))
            .collect(),
        Some("Point") => geometry["coordinates"]
            .as_array()
            .and_then(|c| Some(vec![(c.first()?.as_f64()?, c.get(1)?.as_f64()?)]))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let Some(&(lon0, lat0)) = corners.first() else {
        return;
    };
    let label = l.t("Map of the plot", "地块图");
    let coords = format!("{lat0:.5}, {lon0:.5}");
    if corners.len() == 1 {
        let _ = write!(
            html,
            "<svg id=\"plot-map\" viewBox=\"0 0 200 120\" role=\"img\" aria-label=\"{label} ({coords})\">\
             <rect width=\"200\" height=\"120\" fill=\"#e8f0e0\"/><circle cx=\"100\" cy=\"60\" r=\"8\" fill=\"#1e5631\"/>\
             <text x=\"100\" y=\"100\" text-anchor=\"middle\" font-size=\"10\">{coords}</text></svg>"
        );
        return;
    }
    let k = lat0.to_radians().cos();
    let xs: Vec<f64> = corners.iter().map(|(lon, _)| lon * k).collect();
    let ys: Vec<f64> = corners.iter().map(|(_, lat)| -lat).collect();
    let (min_x, max_x) = bounds(&xs);
    let (min_y, max_y) = bounds(&ys);
    let span = (max_x - min_x).max(max_y - min_y).max(1e-9);
    let scale = 180.0 / span;
    let mut points = String::new();
    for (x, y) in xs.iter().zip(&ys) {
        let _ = write!(
            points,
            "{:.1},{:.1} ",
            10.0 + (x - min_x) * scale,
            10.0 + (y - min_y) * scale
        );
    }
    let _ = write!(
        html,
        "<svg id=\"plot-map\" viewBox=\"0 0 200 200\" role=\"img\" aria-label=\"{label} ({coords})\">\
         <rect width=\"200\" height=\"200\" fill=\"#e8f0e0\"/>\
         <polygon points=\"{}\" fill=\"#7fb069\" stroke=\"#1e5631\" stroke-width=\"2\"/></svg>",
        points.trim_end()
    );
}

fn bounds(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

fn step_name(l: Lang, step: &str) -> &'static str {
    match step {
        "commissioning" => l.t("Harvested", "采收"),
        "harvesting" => l.t("Harvested", "采收"),
        "packing" => l.t("Packed", "包装"),
        "shipping" => l.t("Shipped", "发运"),
        "departing" => l.t("Departed", "启运"),
        "arriving" => l.t("Arrived", "到达"),
        "receiving" => l.t("Received", "收货"),
        "storing" => l.t("Stored", "仓储"),
        "inspecting" => l.t("Inspected", "检验"),
        _ => l.t("Recorded", "记录"),
    }
}

fn timeline(html: &mut String, p: &Page<'_>) {
    let l = p.lang;
    let _ = write!(
        html,
        "<section id=\"journey\"><h2>{}</h2><ol>",
        l.t("Journey", "旅程")
    );
    for event in p.journey["events"].as_array().into_iter().flatten() {
        let step = event["biz_step"].as_str().unwrap_or_default();
        let _ = write!(
            html,
            "<li><strong>{}</strong> <time>{}</time><br><small>{}{}</small></li>",
            step_name(l, step),
            text(&event["event_time"]),
            text(&event["location"]),
            if event["proof"].is_object() {
                l.t(" · anchored in the log", " · 已记入日志")
            } else {
                ""
            },
        );
    }
    for window in p.journey["custody"].as_array().into_iter().flatten() {
        let _ = write!(
            html,
            "<li><strong>{}</strong> <time>{}</time><br><small>{}</small></li>",
            l.t("Departed", "启运"),
            when(window["from_ms"].as_u64().unwrap_or(0)),
            text(&window["from_location"]),
        );
        if window["arrived"] == true {
            let _ = write!(
                html,
                "<li><strong>{}</strong> <time>{}</time><br><small>{}</small></li>",
                l.t("Arrived", "到达"),
                when(window["to_ms"].as_u64().unwrap_or(0)),
                text(&window["to_location"]),
            );
        }
    }
    html.push_str("</ol></section>");
}

fn cold_chain(html: &mut String, p: &Page<'_>) {
    let l = p.lang;
    let _ = write!(
        html,
        "<section id=\"cold-chain\"><h2>{}</h2>",
        l.t("Cold chain", "冷链")
    );
    let windows: Vec<&Value> = p.journey["custody"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if windows.is_empty() {
        let _ = write!(
            html,
            "<p>{}</p>",
            l.t("No shipment recorded yet.", "尚无运输记录。")
        );
    }
    for window in windows {
        chart(html, window, l);
    }
    html.push_str("</section>");
}

/// One custody window's temperatures as a line over the band, excursions shaded red.
fn chart(html: &mut String, window: &Value, l: Lang) {
    const W: f64 = 320.0;
    const H: f64 = 160.0;
    const PAD: f64 = 30.0;
    let points: Vec<(f64, f64)> = window["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
        .collect();
    let excursions = window["excursions"].as_array().map_or(0, Vec::len);
    let _ = write!(
        html,
        "<p>{}: {} · {}: {}</p>",
        l.t("Readings", "读数"),
        window["readings"].as_u64().unwrap_or(0),
        l.t("Excursions", "温度偏离"),
        excursions
    );
    let band = window["band_centi_c"]
        .as_array()
        .and_then(|b| Some((b.first()?.as_f64()?, b.get(1)?.as_f64()?)));
    // The time axis spans the readings (a logger may start after departure and stop before
    // arrival), else the custody window.
    let raw = window["points"].as_array().map_or(&[][..], Vec::as_slice);
    let (first, last) = match (raw.first(), raw.last()) {
        (Some(a), Some(b)) if a[0] != b[0] => (&a[0], &b[0]),
        _ => (&window["from_ms"], &window["to_ms"]),
    };
    let from = first.as_f64().unwrap_or(0.0);
    let to = last.as_f64().unwrap_or(from + 1.0).max(from + 1.0);
    let mut low = points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let mut high = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    if let Some((b_low, b_high)) = band {
        low = low.min(b_low);
        high = high.max(b_high);
    }
    if low > high {
        return;
    }
    low -= 100.0;
    high += 100.0;
    let x = |t: f64| PAD + (t - from) / (to - from) * (W - PAD - 5.0);
    let y = |c: f64| 5.0 + (high - c) / (high - low) * (H - PAD);
    let _ = write!(
        html,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        l.t(
            "Temperature during the shipment, with the product's band",
            "运输途中的温度及产品温度范围"
        )
    );
    if let Some((b_low, b_high)) = band {
        let _ = write!(
            html,
            "<rect class=\"band\" x=\"{PAD}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#d8eed0\"/>\
             <text x=\"2\" y=\"{:.1}\" font-size=\"9\">{}</text><text x=\"2\" y=\"{:.1}\" font-size=\"9\">{}</text>",
            y(b_high),
            W - PAD - 5.0,
            (y(b_low) - y(b_high)).max(0.0),
            y(b_high) + 3.0,
            centi(b_high),
            y(b_low) + 3.0,
            centi(b_low),
        );
    }
    for excursion in window["excursions"].as_array().into_iter().flatten() {
        let start = excursion["start_ms"]
            .as_f64()
            .unwrap_or(from)
            .clamp(from, to);
        let end = excursion["end_ms"].as_f64().unwrap_or(to).clamp(start, to);
        let _ = write!(
            html,
            "<rect class=\"excursion\" x=\"{:.1}\" y=\"5\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#a4000f\" fill-opacity=\"0.25\"><title>{} {} °C</title></rect>",
            x(start),
            (x(end) - x(start)).max(1.0),
            H - PAD,
            l.t("Excursion, peak", "温度偏离，峰值"),
            centi(excursion["peak_centi_c"].as_f64().unwrap_or(0.0)),
        );
    }
    let mut line = String::new();
    for (t, c) in &points {
        let _ = write!(line, "{:.1},{:.1} ", x(*t), y(*c));
    }
    let _ = write!(
        html,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#0b4f8a\" stroke-width=\"1.5\"/>\
         <line x1=\"{PAD}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1b1b1b\"/>\
         <text x=\"{PAD}\" y=\"{:.1}\" font-size=\"9\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"end\">{}</text></svg>",
        line.trim_end(),
        H - PAD + 5.0,
        W - 5.0,
        H - PAD + 5.0,
        H - 12.0,
        when(first.as_u64().unwrap_or(0)),
        W - 5.0,
        H - 12.0,
        when(last.as_u64().unwrap_or(0)),
    );
}

fn certificates(html: &mut String, p: &Page<'_>) {
    let l = p.lang;
    let _ = write!(
        html,
        "<section id=\"certificates\"><h2>{}</h2>",
        l.t("Certificates", "证书")
    );
    if p.certificates.is_empty() {
        let _ = write!(
            html,
            "<p>{}</p>",
            l.t("No certificate recorded for this lot.", "此批次尚无证书。")
        );
    } else {
        html.push_str("<ul>");
        for c in p.certificates {
            let verified = c["issuer_signature_verifies"] == true;
            let _ = write!(
                html,
                "<li><strong>{}</strong> — {} · {} · <span class=\"{}\">{}</span></li>",
                text(&c["type"]),
                text(&c["issuer"]),
                text(&c["status"]),
                if verified { "ok" } else { "bad" },
                if verified {
                    l.t("issuer signature verified", "签发方签名已验证")
                } else {
                    l.t("issuer signature NOT verified", "签发方签名未通过验证")
                },
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_the_five_characters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_language_comes_from_the_query_then_accept_language() {
        let check = |query, header, expected| {
            assert_eq!(
                Lang::choose(query, header),
                expected,
                "{query:?} {header:?}"
            );
        };
        check(Some("zh"), Some("en"), Lang::Zh);
        check(Some("en"), Some("zh-CN"), Lang::En);
        check(None, Some("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        check(None, Some("fr-FR,en;q=0.5,zh;q=0.7"), Lang::Zh);
        check(None, Some("de"), Lang::En);
        check(None, Some("zh;q=0"), Lang::En);
        check(None, None, Lang::En);
        check(Some("xx"), Some("zh-TW"), Lang::Zh);
    }

    fn serial_page(lang: Lang, suspicious: Option<ScanWarning>) -> String {
        let journey = serde_json::json!({ "events": [], "custody": [] });
        page(&Page {
            lang,
            path: "/01/06901234567892/10/L1/21/S1".into(),
            gtin: "06901234567892".into(),
            lot: "L1",
            serial: Some("S1"),
            owner: None,
            journey: &journey,
            certificates: &[],
            suspicious,
            scans: Some(9),
        })
    }

    fn warning(reasons: &[Reason]) -> ScanWarning {
        ScanWarning {
            reasons: reasons.to_vec(),
            count: 120,
            countries: vec!["CN".into(), "NL".into(), "TH".into()],
            countries_capped: false,
            networks: 9,
            networks_capped: false,
        }
    }

    #[test]
    fn a_serial_scanned_far_apart_carries_a_warning_and_others_do_not() {
        let warned = serial_page(Lang::Zh, Some(warning(&[Reason::Prefixes])));
        assert!(warned.contains("id=\"scan-warning\""), "{warned}");
        assert!(warned.contains("role=\"alert\""));
        assert!(warned.contains("<dd>9</dd>"), "the scan count: {warned}");
        assert!(warned.contains("已从9个网络被扫描。"), "{warned}");
        assert!(!serial_page(Lang::Zh, None).contains("scan-warning"));
    }

    #[test]
    fn the_warning_says_which_rule_fired_in_both_languages() {
        let check = |lang: Lang, reasons: &[Reason], expected: &[&str]| {
            assert_eq!(
                scan_warning_lines(lang, &warning(reasons)),
                expected,
                "{lang:?} {reasons:?}"
            );
        };
        check(
            Lang::En,
            &[Reason::Countries],
            &["Scanned in 3 countries: CN, NL, TH."],
        );
        check(
            Lang::Zh,
            &[Reason::Countries],
            &["已在3个国家或地区被扫描：CN、NL、TH。"],
        );
        check(
            Lang::En,
            &[Reason::Prefixes, Reason::Count],
            &[
                "Scanned from 9 networks.",
                "Scanned 120 times from 9 networks.",
            ],
        );
        check(Lang::Zh, &[Reason::Count], &["已从9个网络被扫描120次。"]);
        let capped = ScanWarning {
            countries_capped: true,
            networks_capped: true,
            ..warning(&[Reason::Countries, Reason::Prefixes])
        };
        assert_eq!(
            scan_warning_lines(Lang::En, &capped),
            [
                "Scanned in at least 3 countries: CN, NL, TH.",
                "Scanned from at least 9 networks."
            ]
        );
        let html = serial_page(Lang::En, Some(warning(&[Reason::Countries])));
        assert!(
            html.contains("<li>Scanned in 3 countries: CN, NL, TH.</li>"),
            "{html}"
        );
    }

    #[test]
    fn a_page_escapes_what_it_shows() {
        let journey = serde_json::json!({
            "product": { "name": { "en": "<script>x</script>", "zh": "芒果" } },
            "harvest_date": "2026-06-01",
            "plot": { "name": "A&B", "country": "CN", "area_ha": 1.0,
                      "geometry": { "type": "Point", "coordinates": [100.45, 21.95] } },
            "events": [], "custody": [],
        });
        let html = page(&Page {
            lang: Lang::En,
            path: "/01/06901234567892/10/L1".into(),
            gtin: "06901234567892".into(),
            lot: "L\"1",
            serial: None,
            owner: None,
            journey: &journey,
            certificates: &[],
            suspicious: None,
            scans: None,
        });
        assert!(!html.contains("<script>x"), "{html}");
        assert!(html.contains("&lt;script&gt;x"));
        assert!(html.contains("A&amp;B"));
        assert!(html.contains("L&quot;1"));
        assert!(html.contains("<html lang=\"en\""));
        assert!(html.contains("id=\"plot-map\""));
    }
}

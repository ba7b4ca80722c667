//! The evidence report a person reads: plain text for the terminal ([`render_text`]) and a
//! self-contained HTML evidence certificate ([`render_html`]: inline CSS, no script, no
//! external resource, every value escaped), each in English or Chinese.
//!
//! Every word of the report comes in both languages; values (hashes, keys, identifiers,
//! document numbers) are shown as they are. Technical details from the parsers that a failure
//! quotes (e.g. an EPCIS validation message) stay in English inside the Chinese sentence.

use std::fmt::Write as _;

use gs1::epcis::canon::Timestamp;

use super::format::Subject;
use super::verify::{Bilingual, DocumentStatus, Report};

/// The report's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Chinese (simplified).
    Zh,
}

impl Lang {
    fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Self::En => en,
            Self::Zh => zh,
        }
    }

    fn of(self, text: &Bilingual) -> &str {
        self.pick(&text.en, &text.zh)
    }

    /// The list separator.
    fn comma(self) -> &'static str {
        self.pick(", ", "，")
    }

    /// The label separator.
    fn colon(self) -> &'static str {
        self.pick(": ", "：")
    }

    /// The HTML `lang` attribute value.
    #[must_use]
    pub fn tag(self) -> &'static str {
        self.pick("en", "zh-Hans")
    }
}

/// What a bundle cannot prove, said in every report.
fn limits(lang: Lang) -> &'static str {
    lang.pick(
        "What this bundle cannot prove: it proves that what it holds is in the log, not that \
         nothing else is. A key or document revocation, a later supersession, or an event that is \
         not in the bundle is not seen, and nothing logged after its last checkpoint is covered. \
         Ask the log for a newer bundle to see later changes.",
        "本证据包无法证明的内容：它证明其所含内容已记入日志，但不能证明日志中没有其他内容。\
         未包含在证据包中的密钥撤销、单证撤销、后续取代或业务事件都无法看到，最后一个检查点之后记入日志的内容也不在证明范围内。\
         如需了解之后的变化，请向日志索取更新的证据包。",
    )
}

fn unpinned(lang: Lang) -> &'static str {
    lang.pick(
        "WARNING: trust was not pinned. The bundle was checked against its own policy (log key and \
         witnesses), which whoever wrote the bundle also chose. Give the policy you trust with \
         --policy FILE to check who signed it.",
        "警告：未指定信任策略。本证据包是按其自带的信任策略（日志密钥与见证方）检查的，而该策略由证据包的制作者选定。\
         请用 --policy FILE 指定您信任的策略，以核实签名者身份。",
    )
}

fn utc_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|unix_ms| Timestamp { unix_ms }.to_utc_millis_string())
        .map_or_else(|| format!("{ms} ms"), |t| t.replace(".000Z", "Z"))
}

fn utc_s(s: u64) -> String {
    utc_ms(s.saturating_mul(1000))
}

fn subject_text(subject: &Subject, lang: Lang) -> String {
    match subject {
        Subject::Shipment { exporter, id } => {
            format!("{} {exporter}/{id}", lang.pick("shipment", "货运"))
        }
        Subject::Lot { gtin, lot } => format!(
            "{} GTIN {gtin} {} {lot}",
            lang.pick("lot", "批次"),
            lang.pick("lot number", "批号")
        ),
    }
}

fn status_class(status: DocumentStatus) -> &'static str {
    match status {
        DocumentStatus::Valid => "ok",
        DocumentStatus::Superseded(_) => "warn",
        DocumentStatus::Revoked(_) => "bad",
    }
}

/// The result line: verified, or the failing item.
#[must_use]
pub fn result_line(report: &Report, lang: Lang) -> String {
    match &report.failure {
        None if report.verified() => lang.pick("RESULT: VERIFIED", "结论：验证通过").to_owned(),
        None => lang
            .pick("RESULT: NOT VERIFIED", "结论：未通过验证")
            .to_owned(),
        Some(failure) => format!(
            "{}{}",
            lang.pick(
                "RESULT: NOT VERIFIED, failed item: ",
                "结论：未通过验证，失败项："
            ),
            lang.of(&failure.item.describe())
        ),
    }
}

/// One `label: value` section of the report, shared by both renderings.
struct Section {
    title: String,
    rows: Vec<Vec<String>>,
    /// A CSS class per row in the HTML (empty for none).
    classes: Vec<&'static str>,
}

impl Section {
    fn new(title: &str, rows: Vec<Vec<String>>) -> Self {
        Self {
            title: title.to_owned(),
            classes: vec![""; rows.len()],
            rows,
        }
    }
}

fn sections(report: &Report, lang: Lang) -> Vec<Section> {
    let mut out = Vec::new();
    let mut about = Vec::new();
    if let Some(subject) = &report.subject {
        about.push(vec![
            lang.pick("Subject", "证据对象").to_owned(),
            subject_text(subject, lang),
        ]);
    }
    if let Some(ms) = report.exported_ms {
        about.push(vec![
            lang.pick("Exported", "导出时间").to_owned(),
            utc_ms(ms),
        ]);
    }
    about.push(vec![
        lang.pick("Trust", "信任来源").to_owned(),
        if report.trust_pinned {
            lang.pick(
                "pinned policy (--policy), equal to the bundle's",
                "指定的信任策略（--policy），与证据包中的一致",
            )
        } else {
            lang.pick(
                "NOT PINNED: the bundle's own policy",
                "未指定：使用证据包自带的策略",
            )
        }
        .to_owned(),
    ]);
    if let Some(policy) = &report.policy {
        for key in &policy.log_keys {
            about.push(vec![
                lang.pick("Log key", "日志密钥").to_owned(),
                key.clone(),
            ]);
        }
        for (name, key) in &policy.witnesses {
            about.push(vec![
                lang.pick("Witness", "见证方").to_owned(),
                format!("{name}{}{key}", lang.colon()),
            ]);
        }
        about.push(vec![
            lang.pick("Quorum", "见证签名法定数").to_owned(),
            policy.quorum.clone(),
        ]);
    }
    out.push(Section::new(lang.pick("Evidence bundle", "证据包"), about));

    if !report.checkpoints.is_empty() {
        out.push(Section::new(
            lang.pick("Checkpoints", "检查点"),
            report
                .checkpoints
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let cosigned = if c.cosigned.is_empty() {
                        lang.pick("no witness cosignature", "无见证签名").to_owned()
                    } else {
                        c.cosigned
                            .iter()
                            .map(|(name, time)| format!("{name} ({})", utc_s(*time)))
                            .collect::<Vec<_>>()
                            .join(lang.comma())
                    };
                    vec![
                        format!("{}", i + 1),
                        format!("{} {}", lang.pick("size", "树大小"), c.size),
                        format!("{} {}", lang.pick("root", "根哈希"), c.root),
                        format!(
                            "{}{}{cosigned}",
                            lang.pick("cosigned by", "见证签名"),
                            lang.colon()
                        ),
                    ]
                })
                .collect(),
        ));
    }

    let c = report.counts;
    out.push(Section::new(
        lang.pick("Contents", "内容"),
        vec![
            vec![
                lang.pick("Log entries", "日志条目").to_owned(),
                c.entries.to_string(),
            ],
            vec![
                lang.pick("Reading batches", "读数批次").to_owned(),
                c.batches.to_string(),
            ],
            vec![
                lang.pick("Sensor readings", "传感器读数").to_owned(),
                c.readings.to_string(),
            ],
            vec![
                lang.pick("EPCIS events", "EPCIS 业务事件").to_owned(),
                c.events.to_string(),
            ],
            vec![
                lang.pick("Trade documents", "贸易单证").to_owned(),
                c.documents.to_string(),
            ],
            vec![
                lang.pick("Document anchors", "单证锚定").to_owned(),
                c.anchors.to_string(),
            ],
        ],
    ));

    if !report.devices.is_empty() {
        let mut rows = Vec::new();
        for device in &report.devices {
            let readings = format!("{} {}", device.readings, lang.pick("readings", "条读数"));
            if device.keys.is_empty() {
                rows.push(vec![
                    device.device.to_string(),
                    readings.clone(),
                    lang.pick("no key entry in the bundle", "证据包中没有密钥条目")
                        .to_owned(),
                ]);
            }
            for key in &device.keys {
                let mut state = format!(
                    "{} {}",
                    if key.rotated {
                        lang.pick("rotated at entry", "轮换于条目")
                    } else {
                        lang.pick("registered at entry", "注册于条目")
                    },
                    key.registered
                );
                if let Some(revoked) = key.revoked {
                    let _ = write!(
                        state,
                        "{}{} {revoked}",
                        lang.comma(),
                        lang.pick("revoked at entry", "已撤销于条目")
                    );
                }
                rows.push(vec![
                    device.device.to_string(),
                    readings.clone(),
                    format!(
                        "{} {} {}",
                        lang.pick("device key epoch", "设备密钥 第"),
                        key.epoch.0,
                        lang.pick("", "代")
                    )
                    .trim_end()
                    .to_owned(),
                    key.public_key.clone(),
                    state,
                ]);
            }
        }
        out.push(Section::new(
            lang.pick("Devices and their keys", "设备及其设备密钥"),
            rows,
        ));
    }

    if !report.issuers.is_empty() {
        out.push(Section::new(
            lang.pick("Issuers and their keys", "签发机构及其密钥"),
            report
                .issuers
                .iter()
                .map(|issuer| {
                    let mut state = format!(
                        "{} {}",
                        lang.pick("registered at entry", "注册于条目"),
                        issuer.registered
                    );
                    if let Some(revoked) = issuer.revoked {
                        let _ = write!(
                            state,
                            "{}{} {revoked}",
                            lang.comma(),
                            lang.pick("revoked at entry", "已撤销于条目")
                        );
                    }
                    vec![
                        issuer.org.clone(),
                        format!("{} {}", lang.pick("key id", "密钥标识"), issuer.key_id),
                        state,
                    ]
                })
                .collect(),
        ));
    }

    if !report.events.is_empty() {
        out.push(Section::new(
            lang.pick("EPCIS events", "EPCIS 业务事件"),
            report
                .events
                .iter()
                .map(|e| {
                    vec![
                        format!("{} {}", lang.pick("entry", "条目"), e.entry),
                        e.event_type.to_owned(),
                        e.biz_step.clone(),
                        utc_ms(e.event_time_ms),
                        e.event_hash.clone(),
                    ]
                })
                .collect(),
        ));
    }

    if !report.documents.is_empty() {
        out.push(Section {
            title: lang.pick("Trade documents", "贸易单证").to_owned(),
            classes: report
                .documents
                .iter()
                .map(|d| {
                    if d.signature_valid {
                        status_class(d.status)
                    } else {
                        "bad"
                    }
                })
                .collect(),
            rows: report
                .documents
                .iter()
                .map(|d| {
                    vec![
                        format!("{} {}", lang.pick("entry", "条目"), d.entry),
                        d.document_type.clone(),
                        format!("{} {}", lang.pick("No.", "编号"), d.number),
                        format!("{} {}", lang.pick("issuer", "签发机构"), d.issuer),
                        lang.of(&d.status.describe()).to_owned(),
                        if d.signature_valid {
                            lang.pick("issuer signature valid", "签发机构签名有效")
                        } else {
                            lang.pick("issuer signature NOT valid", "签发机构签名无效")
                        }
                        .to_owned(),
                        format!("{}, {} B, SHA-256 {}", d.media_type, d.bytes, d.sha256),
                    ]
                })
                .collect(),
        });
    }
    out
}

/// The report as plain text.
#[must_use]
pub fn render_text(report: &Report, lang: Lang) -> String {
    let mut out = String::new();
    out.push_str(lang.pick(
        "agritrace-verify: evidence bundle, offline verification (no network)\n",
        "agritrace-verify：证据包离线验证（不联网）\n",
    ));
    let _ = writeln!(out, "{}", result_line(report, lang));
    if !report.trust_pinned {
        let _ = writeln!(out, "\n!! {}", unpinned(lang));
    }
    for section in sections(report, lang) {
        let _ = writeln!(out, "\n{}", section.title);
        for row in section.rows {
            let _ = writeln!(out, "  {}", row.join("  "));
        }
    }
    let _ = writeln!(out, "\n{}", lang.pick("Checks", "检查项"));
    for check in &report.checks {
        let _ = writeln!(
            out,
            "  {:<7} {} ({})",
            lang.pick("ok", "通过"),
            lang.of(&check.name.describe()),
            check.count
        );
    }
    if let Some(failure) = &report.failure {
        let _ = writeln!(
            out,
            "  {:<7} {}{colon}{}{colon}{}",
            lang.pick("FAILED", "失败"),
            lang.of(&failure.check.describe()),
            lang.of(&failure.item.describe()),
            lang.of(&failure.reason),
            colon = lang.colon(),
        );
    }
    let _ = writeln!(out, "\n{}", limits(lang));
    let _ = writeln!(out, "\n{}", result_line(report, lang));
    out
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attribute values.
#[must_use]
pub fn escape_html(text: &str) -> String {
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

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI','Noto Sans','PingFang SC',\
'Microsoft YaHei',sans-serif;margin:2em auto;max-width:60em;color:#1b1b1b;padding:0 1em}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}\
.verdict{font-size:1.3em;font-weight:bold;padding:.6em 1em;border-radius:.3em}\
.verdict.ok{background:#e3f4e1;color:#1d5b1a;border:2px solid #1d5b1a}\
.verdict.bad{background:#fbe4e4;color:#8a1111;border:2px solid #8a1111}\
.warning{background:#fff4d6;border:2px solid #9a6b00;padding:.6em 1em;margin:1em 0;font-weight:bold}\
table{border-collapse:collapse;width:100%;font-size:.9em}td{border-bottom:1px solid #eee;padding:.3em .5em;\
vertical-align:top}td.long{word-break:break-all}td.ok{color:#1d5b1a}td.bad{color:#8a1111;font-weight:bold}\
td.warn{color:#9a6b00}tr.ok td{color:#1d5b1a}tr.bad td{color:#8a1111;font-weight:bold}\
tr.warn td{color:#9a6b00}.limits{font-size:.9em;color:#444;margin-top:2em}\
footer{font-size:.8em;color:#666;margin-top:2em}";

/// The report as a self-contained HTML evidence certificate.
#[must_use]
pub fn render_html(report: &Report, lang: Lang) -> String {
    let e = escape_html;
    let mut out = String::new();
    let title = lang.pick("Evidence certificate", "证据验证证书");
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        lang.tag(),
        e(title),
        e(title)
    );
    let class = if report.verified() { "ok" } else { "bad" };
    let _ = writeln!(
        out,
        "<p class=\"verdict {class}\">{}</p>",
        e(&result_line(report, lang))
    );
    if !report.trust_pinned {
        let _ = writeln!(out, "<p class=\"warning\">{}</p>", e(unpinned(lang)));
    }
    for section in sections(report, lang) {
        let _ = writeln!(out, "<h2>{}</h2>\n<table>", e(&section.title));
        for (row, class) in section.rows.into_iter().zip(section.classes) {
            if class.is_empty() {
                out.push_str("<tr>");
            } else {
                let _ = write!(out, "<tr class=\"{class}\">");
            }
            for cell in row {
                // Hashes and keys may break anywhere; words may not.
                if cell.split(' ').any(|word| word.chars().count() > 24) {
                    let _ = write!(out, "<td class=\"long\">{}</td>", e(&cell));
                } else {
                    let _ = write!(out, "<td>{}</td>", e(&cell));
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    let _ = writeln!(
        out,
        "<h2>{}</h2>\n<table>",
        e(lang.pick("Checks", "检查项"))
    );
    for check in &report.checks {
        let _ = writeln!(
            out,
            "<tr><td class=\"ok\">{}</td><td>{}</td><td>{}</td></tr>",
            e(lang.pick("ok", "通过")),
            e(lang.of(&check.name.describe())),
            check.count
        );
    }
    if let Some(failure) = &report.failure {
        let _ = writeln!(
            out,
            "<tr><td class=\"bad\">{}</td><td>{}{}{}</td><td>{}</td></tr>",
            e(lang.pick("FAILED", "失败")),
            e(lang.of(&failure.check.describe())),
            e(lang.colon()),
            e(lang.of(&failure.item.describe())),
            e(lang.of(&failure.reason))
        );
    }
    out.push_str("</table>\n");
    let statuses: Vec<&str> = report
        .documents
        .iter()
        .map(|d| status_class(d.status))
        .collect();
    if statuses.contains(&"bad") {
        let _ = writeln!(
            out,
            "<p class=\"warning\">{}</p>",
            e(lang.pick(
                "At least one document of this bundle is revoked.",
                "本证据包中至少有一份单证已撤销。"
            ))
        );
    }
    let _ = writeln!(out, "<p class=\"limits\">{}</p>", e(limits(lang)));
    let _ = writeln!(
        out,
        "<footer>{}</footer>\n</body>\n</html>",
        e(lang.pick(
            "Produced offline by agritrace-verify from the evidence bundle alone; anyone can repeat the check with the same file.",
            "由 agritrace-verify 仅根据证据包离线生成；任何人都可以用同一文件重复此验证。"
        ))
    );
    out
}

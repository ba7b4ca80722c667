//! Data entry for producers and exporters (issue "Pages people use", item 3): server-rendered
//! forms, in Chinese or English, that `entry.js` checks as the person types and then submits
//! through the JSON API with the signed-in caller's token — the same routes, authorisation and
//! EPCIS events as any other client, so nothing here writes a record itself.
//!
//! | route | answers |
//! |---|---|
//! | `GET /entry` | the caller's organisation at a glance: plots, lots, shipments, devices (filled from the API), links to each form |
//! | `GET /entry/plots/new` | register a plot: coordinates pasted (GeoJSON, `lon,lat` or `lat,lon` lines) or drawn on a grid, a live preview and its area |
//! | `GET /entry/harvest` | record a harvest: the lot (`POST /v1/orgs/{org}/lots`), then its commissioning event (`POST /epcis/capture`) |
//! | `GET /entry/packing` | record a packing event of a lot (`POST /epcis/capture`) |
//! | `GET /entry/shipments/new` | a shipment (`POST /v1/orgs/{org}/shipments`), containers' ISO 6346 check digits checked as typed |
//! | `GET /entry/documents/new` | attach a document (`POST /v1/documents`), its size checked against the node's limit before upload |
//! | `GET /entry/devices/new` | register a device and its Ed25519 public key (`POST /v1/orgs/{org}/devices`) |
//! | `GET /entry/devices/{device}` | a device's health and quarantine (`GET /v1/orgs/{org}/devices/{device}/health`, `.../quarantine`); 400 for an id that is not one |
//! | `GET /pages/entry.js` | the forms' script |
//!
//! Every form follows one markup pattern ([`field`]): a `<label for>`, a hint and an error
//! line named by the control's `aria-describedby`, the error line written by the script next
//! to its field with `aria-invalid`. The pages hold no data of the organisation (the shell's
//! invariant); the only value taken from the node is its document size limit, which is
//! configuration, not a record.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;

use super::render::{Lang, escape};
use super::shell::{self, Area, LangQuery, Shell};
use crate::documents::DocumentType;
use crate::http::{ApiError, AppState};

/// The forms' script.
pub const ENTRY_JS: &str = include_str!("entry.js");

/// The routes of the data-entry pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/entry", get(overview))
        .route("/entry/plots/new", get(plot_form))
        .route("/entry/harvest", get(harvest_form))
        .route("/entry/packing", get(packing_form))
        .route("/entry/shipments/new", get(shipment_form))
        .route("/entry/documents/new", get(document_form))
        .route("/entry/devices/new", get(device_form))
        .route("/entry/devices/{device}", get(device_page))
        .route("/pages/entry.js", get(|| async { shell::script(ENTRY_JS) }))
}

/// The kind of control a form field is.
#[derive(Debug, Clone, Copy)]
pub enum Control<'a> {
    /// `<input type=...>` with extra attributes (trusted markup written in this file).
    Input(&'a str, &'a str),
    /// `<textarea>` with extra attributes.
    Textarea(&'a str),
    /// `<select>` with `(value, label)` options.
    Select(&'a [(&'a str, &'a str)]),
}

/// One labelled field of a form.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The control's id and name (its hint is `{id}-hint`, its error line `{id}-error`).
    pub id: &'a str,
    /// The label (plain text).
    pub label: &'a str,
    /// What to type, in plain words (plain text; empty for none).
    pub hint: &'a str,
    /// The control.
    pub control: Control<'a>,
}

/// Writes a field: label, hint, control, error line; the control names hint and error line
/// in `aria-describedby` so a screen reader reads both.
pub fn field(html: &mut String, f: &Field<'_>) {
    let id = escape(f.id);
    let _ = write!(
        html,
        "<div class=\"field\" id=\"{id}-field\"><label for=\"{id}\">{label}</label>",
        label = escape(f.label)
    );
    if !f.hint.is_empty() {
        let _ = write!(
            html,
            "<p class=\"hint\" id=\"{id}-hint\">{}</p>",
            escape(f.hint)
        );
    }
    let described = if f.hint.is_empty() {
        format!("{id}-error")
    } else {
        format!("{id}-hint {id}-error")
    };
    match f.control {
        Control::Input(kind, attrs) => {
            let _ = write!(
                html,
                "<input id=\"{id}\" name=\"{id}\" type=\"{kind}\" {attrs} aria-describedby=\"{described}\">"
            );
        }
        Control::Textarea(attrs) => {
            let _ = write!(
                html,
                "<textarea id=\"{id}\" name=\"{id}\" {attrs} aria-describedby=\"{described}\"></textarea>"
            );
        }
        Control::Select(options) => {
            let _ = write!(
                html,
                "<select id=\"{id}\" name=\"{id}\" aria-describedby=\"{described}\">"
            );
            for (value, label) in options {
                let _ = write!(
                    html,
                    "<option value=\"{}\">{}</option>",
                    escape(value),
                    escape(label)
                );
            }
            html.push_str("</select>");
        }
    }
    let _ = write!(
        html,
        "<p class=\"field-error\" id=\"{id}-error\" aria-live=\"polite\"></p></div>"
    );
}

/// The end of every form: the submit button (disabled until every field is valid), a line
/// saying why it is disabled, and where the outcome is told.
fn form_end(html: &mut String, l: Lang, submit: &str) {
    let _ = write!(
        html,
        "<p class=\"hint\" id=\"submit-why\" aria-live=\"polite\"></p>\
         <button type=\"submit\" id=\"submit\" disabled aria-describedby=\"submit-why\">{submit}</button>\
         <a class=\"back\" href=\"/entry?lang={code}\">{back}</a></form>\
         <div id=\"result\" aria-live=\"polite\"></div></section>",
        submit = escape(submit),
        code = l.code(),
        back = l.t("Back to data entry", "返回数据录入"),
    );
}

/// The start of a form: its section, heading, explanation and `<form>` tag.
fn form_start(html: &mut String, form: &str, heading: &str, explain: &str) {
    let _ = write!(
        html,
        "<section><h2>{}</h2><p>{}</p><form id=\"entry-form\" data-form=\"{}\" novalidate>",
        escape(heading),
        escape(explain),
        escape(form)
    );
}

/// A whole data-entry page as a response.
fn page(l: Lang, title: &str, path: &str, body: &str) -> Response {
    let html = shell::html(&Shell {
        lang: l,
        title,
        path,
        area: Area::Entry,
        body,
        script: Some("/pages/entry.js"),
        signed_in: true,
    });
    shell::respond(l, html)
}

/// The fields of an event's time and place (harvest and packing share them).
fn when_and_where(html: &mut String, l: Lang, place_hint: &str) {
    field(
        html,
        &Field {
            id: "date",
            label: l.t("Date", "日期"),
            hint: l.t(
                "Not after today (the node counts days in UTC).",
                "不能晚于今天（节点按 UTC 计日）。",
            ),
            control: Control::Input("date", "required"),
        },
    );
    field(
        html,
        &Field {
            id: "time",
            label: l.t("Time (local)", "时间（当地）"),
            hint: l.t(
                "The clock time where it happened.",
                "事件发生地的钟点时间。",
            ),
            control: Control::Input("time", "required"),
        },
    );
    field(
        html,
        &Field {
            id: "offset",
            label: l.t("UTC offset", "UTC 时差"),
            hint: l.t(
                "Of the place, as +08:00 or -05:00 (this browser's is filled in).",
                "事件发生地的时差，如 +08:00 或 -05:00（已填入本浏览器的时差）。",
            ),
            control: Control::Input("text", "required maxlength=\"6\" autocomplete=\"off\""),
        },
    );
    field(
        html,
        &Field {
            id: "location",
            label: l.t("Where (business location)", "地点（业务地点）"),
            hint: place_hint,
            control: Control::Input(
                "text",
                "required list=\"location-list\" autocomplete=\"off\" spellcheck=\"false\"",
            ),
        },
    );
    html.push_str("<datalist id=\"location-list\"></datalist>");
}

fn place_hint(l: Lang) -> &'static str {
    l.t(
        "A GLN (13 digits, e.g. 0690123000010), an SGLN such as urn:epc:id:sgln:0690123.00001.0, or an https:// address of the place. Your organisation's locations with a GLN are suggested.",
        "GLN（13 位数字，如 0690123000010）、SGLN（如 urn:epc:id:sgln:0690123.00001.0），或该地点的 https:// 地址。会提示贵组织已登记 GLN 的地点。",
    )
}

async fn overview(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let code = l.code();
    let mut body = String::with_capacity(4 * 1024);
    let _ = write!(
        body,
        "<section id=\"entry-overview\" data-form=\"overview\"><h2>{h}</h2><p>{explain}</p>\
         <nav aria-label=\"{forms}\" class=\"forms\">\
         <a class=\"button\" href=\"/entry/plots/new?lang={code}\">{plot}</a>\
         <a class=\"button\" href=\"/entry/harvest?lang={code}\">{harvest}</a>\
         <a class=\"button\" href=\"/entry/packing?lang={code}\">{packing}</a>\
         <a class=\"button\" href=\"/entry/shipments/new?lang={code}\">{shipment}</a>\
         <a class=\"button\" href=\"/entry/documents/new?lang={code}\">{document}</a>\
         <a class=\"button\" href=\"/entry/devices/new?lang={code}\">{device}</a></nav></section>",
        h = l.t("Your organisation", "贵组织"),
        explain = l.t(
            "What your organisation has recorded on this node, newest lists first, and the forms to add more. Everything below comes from the node's API with your sign-in.",
            "贵组织在本节点上已记录的内容，以及添加新记录的表单。以下内容均通过您的登录从节点 API 取得。",
        ),
        forms = l.t("Forms", "表单"),
        plot = l.t("Register a plot", "登记地块"),
        harvest = l.t("Record a harvest", "记录采收"),
        packing = l.t("Record packing", "记录包装"),
        shipment = l.t("New shipment", "新建货运"),
        document = l.t("Attach a document", "附加单证"),
        device = l.t("Register a device", "登记设备"),
    );
    for (id, heading) in [
        ("plots", l.t("Plots", "地块")),
        ("lots", l.t("Lots", "批次")),
        ("shipments", l.t("Shipments", "货运")),
        ("devices", l.t("Devices", "设备")),
    ] {
        let _ = write!(
            body,
            "<section id=\"{id}\" aria-busy=\"true\"><h2>{heading}</h2>\
             <div class=\"list\" aria-live=\"polite\"><p class=\"hint\">{loading}</p></div></section>",
            loading = l.t("Loading…", "加载中…"),
        );
    }
    page(l, l.t("Data entry", "数据录入"), "/entry", &body)
}

/// A device's health: its last reading, its clock against the node's, the gaps in its
/// sequence numbers and the samples it dropped, its keys, and what ingest refused from it —
/// filled in by `entry.js` from the API (the page holds no data).
async fn device_page(
    Path(device): Path<String>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let device: protocol::DeviceId = device
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("device id: {e}")))?;
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let mut body = String::with_capacity(4 * 1024);
    let _ = write!(
        body,
        "<p><a href=\"/entry?lang={code}\">{back}</a></p>\
         <section id=\"device-health\" data-device=\"{device}\"><h2>{h} <code>{device}</code></h2><p>{explain}</p>\
         <div id=\"health-summary\" aria-live=\"polite\"><p class=\"hint\">{loading}</p></div></section>\
         <section id=\"health-outbox\" aria-labelledby=\"outbox-h\"><h2 id=\"outbox-h\">{outbox_h}</h2><p class=\"hint\">{outbox_explain}</p>\
         <div class=\"list\" aria-live=\"polite\"></div></section>\
         <section id=\"health-keys\" aria-labelledby=\"keys-h\"><h2 id=\"keys-h\">{keys_h}</h2><div class=\"list\"></div></section>\
         <section id=\"health-quarantine\" aria-labelledby=\"quarantine-h\" aria-busy=\"true\"><h2 id=\"quarantine-h\">{quarantine_h}</h2>\
         <p class=\"hint\">{quarantine_explain}</p><div class=\"list\" aria-live=\"polite\"><p class=\"hint\">{loading}</p></div></section>",
        code = l.code(),
        back = l.t("← Your organisation", "← 贵组织"),
        h = l.t("Device", "设备"),
        device = escape(&device.to_string()),
        explain = l.t(
            "What the node's committed readings say about this device: its last reading, how far its clock is from the node's, and the readings it never delivered.",
            "节点已提交的读数所反映的设备状况：最后一条读数、设备时钟与节点时钟的偏差，以及未送达的读数。",
        ),
        loading = l.t("Loading…", "加载中…"),
        outbox_h = l.t("Missing readings", "缺失的读数"),
        outbox_explain = l.t(
            "Sequence numbers absent among the last 1,000: readings the device has not delivered (yet), and the samples it reports having dropped.",
            "最近 1,000 个序号中缺失的序号：设备尚未送达的读数，以及设备报告丢弃的采样数。",
        ),
        keys_h = l.t("Keys", "密钥"),
        quarantine_h = l.t("Refused readings", "被拒绝的读数"),
        quarantine_explain = l.t(
            "What the node refused from this device, oldest first, and why. Nothing refused is lost: each is kept here with its reason.",
            "节点拒绝的本设备数据（按时间先后）及原因。被拒绝的数据不会丢失：每条都连同原因保存在此。",
        ),
    );
    let path = format!("/entry/devices/{device}");
    let title = format!("{} {device}", l.t("Device", "设备"));
    Ok(page(l, &title, &path, &body))
}

async fn plot_form(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let mut html = String::with_capacity(8 * 1024);
    form_start(
        &mut html,
        "plot",
        l.t("Register a plot", "登记地块"),
        l.t(
            "A plot of land your organisation grows on, with its geolocation in WGS84 as the EU Deforestation Regulation asks: a plot over 4 hectares needs its outline (a polygon); a smaller one may be a single point with its area.",
            "贵组织种植所用的地块，及其 WGS84 地理位置（按欧盟零毁林法规要求）：大于 4 公顷的地块须给出边界（多边形）；较小的地块可给出一个点及面积。",
        ),
    );
    field(
        &mut html,
        &Field {
            id: "plot-id",
            label: l.t("Plot id", "地块编号"),
            hint: l.t(
                "2 to 63 characters: a-z, 0-9, and - . _ between them (e.g. hillside-7).",
                "2 至 63 个字符：a-z、0-9，中间可用 - . _（如 hillside-7）。",
            ),
            control: Control::Input(
                "text",
                "required maxlength=\"63\" autocomplete=\"off\" spellcheck=\"false\"",
            ),
        },
    );
    field(
        &mut html,
        &Field {
            id: "plot-name",
            label: l.t("Name", "名称"),
            hint: "",
            control: Control::Input("text", "required maxlength=\"200\""),
        },
    );
    field(
        &mut html,
        &Field {
            id: "country",
            label: l.t("Country of production", "生产国"),
            hint: l.t(
                "ISO 3166-1 two-letter code, e.g. CN, TH, VN.",
                "ISO 3166-1 两位字母代码，如 CN、TH、VN。",
            ),
            control: Control::Input(
                "text",
                "required maxlength=\"2\" autocomplete=\"off\" spellcheck=\"false\"",
            ),
        },
    );
    let _ = write!(
        html,
        "<fieldset id=\"mode\"><legend>{legend}</legend>\
         <label><input type=\"radio\" name=\"mode\" value=\"paste\" checked> {paste}</label>\
         <label><input type=\"radio\" name=\"mode\" value=\"draw\"> {draw}</label></fieldset>\
         <div id=\"paste-panel\">",
        legend = l.t("How to give the outline", "如何给出边界"),
        paste = l.t("Paste coordinates", "粘贴坐标"),
        draw = l.t("Draw on a grid", "在网格上绘制"),
    );
    field(
        &mut html,
        &Field {
            id: "order",
            label: l.t("What you paste", "粘贴的格式"),
            hint: l.t(
                "GeoJSON is [longitude, latitude] with the ring closed (last position = first). For lines, say whether each line is longitude first or latitude first; the ring is closed for you.",
                "GeoJSON 为 [经度, 纬度]，环须闭合（最后一个位置与第一个相同）。按行粘贴时请选择每行先写经度还是先写纬度；环会自动闭合。",
            ),
            control: Control::Select(&[
                ("latlon", l.t("lines of \"latitude, longitude\" (as map apps copy them)", "每行“纬度, 经度”（地图应用复制的格式）")),
                ("lonlat", l.t("lines of \"longitude, latitude\"", "每行“经度, 纬度”")),
                ("geojson", l.t("GeoJSON (Polygon or Point)", "GeoJSON（Polygon 或 Point）")),
            ]),
        },
    );
    field(
        &mut html,
        &Field {
            id: "coords",
            label: l.t("Coordinates", "坐标"),
            hint: l.t(
                "Decimal degrees, one corner per line (at least 3 different corners), or one line for a point. Kept to 6 decimals (about 0.1 m).",
                "十进制度数，每行一个角点（至少 3 个不同的角点），或一行表示一个点。保留 6 位小数（约 0.1 米）。",
            ),
            control: Control::Textarea("rows=\"7\" spellcheck=\"false\" autocomplete=\"off\""),
        },
    );
    let _ = write!(html, "</div><div id=\"draw-panel\" hidden>");
    field(
        &mut html,
        &Field {
            id: "centre",
            label: l.t("Centre of the grid", "网格中心"),
            hint: l.t(
                "\"latitude, longitude\" near the plot; then click the corners on the grid below (each square is 20 m). No map is loaded: there may be no internet here.",
                "地块附近的“纬度, 经度”；然后在下方网格上点击各角点（每格 20 米）。不加载地图：此处可能没有互联网。",
            ),
            control: Control::Input("text", "autocomplete=\"off\" spellcheck=\"false\""),
        },
    );
    let _ = write!(
        html,
        "<svg id=\"draw-canvas\" viewBox=\"0 0 300 300\" width=\"300\" height=\"300\" role=\"application\" tabindex=\"0\" aria-label=\"{label}\" style=\"background:#f4f7ef;border:1px solid #6b6b63;cursor:crosshair;touch-action:none\"></svg>\
         <p class=\"hint\" id=\"draw-status\" aria-live=\"polite\"></p>\
         <button type=\"button\" class=\"secondary\" id=\"draw-undo\">{undo}</button>\
         <button type=\"button\" class=\"secondary\" id=\"draw-clear\">{clear}</button></div>",
        label = l.t(
            "Drawing grid: click to add a corner",
            "绘图网格：点击添加角点"
        ),
        undo = l.t("Remove the last corner", "删除最后一个角点"),
        clear = l.t("Start again", "重新开始"),
    );
    field(
        &mut html,
        &Field {
            id: "area",
            label: l.t(
                "Area in hectares (for a point only)",
                "面积（公顷，仅用于点）",
            ),
            hint: l.t(
                "A plot given as a point must be 4 ha or less; a polygon's area is computed.",
                "以点表示的地块不得超过 4 公顷；多边形的面积自动计算。",
            ),
            control: Control::Input("text", "inputmode=\"decimal\" autocomplete=\"off\""),
        },
    );
    let _ = write!(
        html,
        "<figure id=\"preview\"><figcaption>{caption}: <output id=\"plot-area\" for=\"coords\">—</output></figcaption>\
         <svg id=\"plot-preview\" viewBox=\"0 0 200 200\" width=\"200\" height=\"200\" role=\"img\" aria-label=\"{label}\" style=\"background:#e8f0e0\"></svg></figure>",
        caption = l.t("Preview and area", "预览与面积"),
        label = l.t("Preview of the plot", "地块预览"),
    );
    form_end(&mut html, l, l.t("Register the plot", "登记地块"));
    page(
        l,
        l.t("Register a plot", "登记地块"),
        "/entry/plots/new",
        &html,
    )
}

fn gtin_field(html: &mut String, l: Lang) {
    field(
        html,
        &Field {
            id: "gtin",
            label: l.t("Product GTIN", "产品 GTIN"),
            hint: l.t(
                "8, 12, 13 or 14 digits; the last one is a check digit. Your organisation's products are suggested.",
                "8、12、13 或 14 位数字，最后一位是校验位。会提示贵组织的产品。",
            ),
            control: Control::Input(
                "text",
                "required inputmode=\"numeric\" maxlength=\"14\" list=\"gtin-list\" autocomplete=\"off\"",
            ),
        },
    );
    html.push_str("<datalist id=\"gtin-list\"></datalist>");
}

fn quantity_field(html: &mut String, l: Lang, required: bool) {
    field(
        html,
        &Field {
            id: "quantity",
            label: if required {
                l.t("Quantity (kg)", "数量（千克）")
            } else {
                l.t("Quantity (kg, optional)", "数量（千克，可选）")
            },
            hint: l.t("Above 0.", "须大于 0。"),
            control: Control::Input(
                "text",
                if required {
                    "required inputmode=\"decimal\" autocomplete=\"off\""
                } else {
                    "inputmode=\"decimal\" autocomplete=\"off\""
                },
            ),
        },
    );
}

async fn harvest_form(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let mut html = String::with_capacity(8 * 1024);
    form_start(
        &mut html,
        "harvest",
        l.t("Record a harvest", "记录采收"),
        l.t(
            "Creates the harvest lot, then records its harvest (an EPCIS commissioning event) in the log. If the event cannot be recorded, the page says so and lets you try the event again: the lot is never recorded twice.",
            "先创建采收批次，再把采收事件（EPCIS commissioning 事件）记入日志。若事件未能记录，页面会说明并允许重试事件：批次不会被重复创建。",
        ),
    );
    gtin_field(&mut html, l);
    field(
        &mut html,
        &Field {
            id: "lot",
            label: l.t("Lot number", "批号"),
            hint: l.t(
                "Up to 20 characters: letters, digits and ! \" % & ' ( ) * + , - . / : ; < = > ? _ (GS1 AI 10). No spaces.",
                "最多 20 个字符：字母、数字及 ! \" % & ' ( ) * + , - . / : ; < = > ? _（GS1 AI 10）。不能有空格。",
            ),
            control: Control::Input(
                "text",
                "required maxlength=\"20\" autocomplete=\"off\" spellcheck=\"false\"",
            ),
        },
    );
    field(
        &mut html,
        &Field {
            id: "plot",
            label: l.t("Plot it was harvested on", "采收地块"),
            hint: l.t("Your organisation's plots.", "贵组织的地块。"),
            control: Control::Select(&[("", l.t("Loading plots…", "正在加载地块…"))]),
        },
    );
    quantity_field(&mut html, l, true);
    when_and_where(&mut html, l, place_hint(l));
    form_end(&mut html, l, l.t("Record the harvest", "记录采收"));
    page(
        l,
        l.t("Record a harvest", "记录采收"),
        "/entry/harvest",
        &html,
    )
}

async fn packing_form(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let mut html = String::with_capacity(8 * 1024);
    form_start(
        &mut html,
        "packing",
        l.t("Record packing", "记录包装"),
        l.t(
            "Records that a lot was packed (an EPCIS packing event) in the log.",
            "把批次的包装事件（EPCIS packing 事件）记入日志。",
        ),
    );
    field(
        &mut html,
        &Field {
            id: "lot-choice",
            label: l.t("Lot", "批次"),
            hint: l.t(
                "One of your organisation's lots (GTIN / lot number).",
                "贵组织的批次（GTIN / 批号）。",
            ),
            control: Control::Select(&[("", l.t("Loading lots…", "正在加载批次…"))]),
        },
    );
    quantity_field(&mut html, l, false);
    when_and_where(&mut html, l, place_hint(l));
    form_end(&mut html, l, l.t("Record packing", "记录包装"));
    page(
        l,
        l.t("Record packing", "记录包装"),
        "/entry/packing",
        &html,
    )
}

async fn shipment_form(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let mut html = String::with_capacity(8 * 1024);
    form_start(
        &mut html,
        "shipment",
        l.t("New shipment", "新建货运"),
        l.t(
            "A shipment your organisation exports: who receives it, where it goes, the customs authorities it is declared to, its containers, the lots it carries and the loggers travelling with it.",
            "贵组织出口的一批货：收货人、目的地、申报的海关、集装箱、所载批次及随行的温度记录仪。",
        ),
    );
    let text = "required maxlength=\"200\"";
    let country = "required maxlength=\"2\" autocomplete=\"off\" spellcheck=\"false\"";
    let country_hint = l.t("ISO 3166-1 two-letter code.", "ISO 3166-1 两位字母代码。");
    for f in [
        Field {
            id: "shipment-id",
            label: l.t("Shipment id", "货运编号"),
            hint: l.t(
                "2 to 63 characters: a-z, 0-9, and - . _ between them.",
                "2 至 63 个字符：a-z、0-9，中间可用 - . _。",
            ),
            control: Control::Input(
                "text",
                "required maxlength=\"63\" autocomplete=\"off\" spellcheck=\"false\"",
            ),
        },
        Field {
            id: "consignee-name",
            label: l.t("Consignee", "收货人"),
            hint: "",
            control: Control::Input("text", text),
        },
        Field {
            id: "consignee-country",
            label: l.t("Consignee's country", "收货人所在国"),
            hint: country_hint,
            control: Control::Input("text", country),
        },
        Field {
            id: "origin-country",
            label: l.t("From (country)", "起运国"),
            hint: country_hint,
            control: Control::Input("text", country),
        },
        Field {
            id: "destination-country",
            label: l.t("To (country)", "目的国"),
            hint: country_hint,
            control: Control::Input("text", country),
        },
        Field {
            id: "declared-to",
            label: l.t("Declared to (customs authorities)", "申报海关"),
            hint: l.t(
                "Their organisation ids on this node, separated by commas (e.g. th-customs); at most 16.",
                "海关在本节点上的组织编号，用逗号分隔（如 th-customs）；最多 16 个。",
            ),
            control: Control::Input("text", "autocomplete=\"off\" spellcheck=\"false\""),
        },
        Field {
            id: "containers",
            label: l.t("Containers", "集装箱"),
            hint: l.t(
                "ISO 6346 numbers, one per line: 3 letters of the owner, U, J or Z, 6 digits and the check digit (e.g. CSQU3054383).",
                "ISO 6346 箱号，每行一个：3 个箱主字母、U/J/Z、6 位数字和校验位（如 CSQU3054383）。",
            ),
            control: Control::Textarea(
                "rows=\"3\" spellcheck=\"false\" autocomplete=\"off\" style=\"text-transform:uppercase\"",
            ),
        },
    ] {
        field(&mut html, &f);
    }
    let _ = write!(
        html,
        "<fieldset id=\"lots-field\" aria-describedby=\"lots-error\"><legend>{lots}</legend>\
         <div id=\"lots-choices\"><p class=\"hint\">{loading}</p></div>\
         <p class=\"field-error\" id=\"lots-error\" aria-live=\"polite\"></p></fieldset>\
         <fieldset id=\"devices-field\" aria-describedby=\"devices-error\"><legend>{devices}</legend>\
         <div id=\"devices-choices\"><p class=\"hint\">{loading}</p></div>\
         <p class=\"field-error\" id=\"devices-error\" aria-live=\"polite\"></p></fieldset>",
        lots = l.t("Lots it carries", "所载批次"),
        devices = l.t("Loggers travelling with it", "随行记录仪"),
        loading = l.t("Loading…", "加载中…"),
    );
    for f in [
        Field {
            id: "departure-place",
            label: l.t("Planned departure: place", "计划起运：地点"),
            hint: l.t("A port, border post or yard.", "港口、口岸或堆场。"),
            control: Control::Input("text", text),
        },
        Field {
            id: "departure-time",
            label: l.t(
                "Planned departure: date and time (local)",
                "计划起运：日期和时间（本地）",
            ),
            hint: "",
            control: Control::Input("datetime-local", "required"),
        },
    ] {
        field(&mut html, &f);
    }
    form_end(&mut html, l, l.t("Create the shipment", "创建货运"));
    page(
        l,
        l.t("New shipment", "新建货运"),
        "/entry/shipments/new",
        &html,
    )
}

/// A document type's name in words.
fn type_label(l: Lang, t: DocumentType) -> &'static str {
    match t {
        DocumentType::CertificateOfOrigin => l.t("Certificate of origin", "原产地证书"),
        DocumentType::PhytosanitaryCertificate => l.t("Phytosanitary certificate", "植物检疫证书"),
        DocumentType::CommercialInvoice => l.t("Commercial invoice", "商业发票"),
        DocumentType::PackingList => l.t("Packing list", "装箱单"),
        DocumentType::BillOfLading => l.t("Bill of lading", "提单"),
        DocumentType::Fsma204Record => l.t("FSMA 204 record", "FSMA 204 记录"),
        DocumentType::EudrDueDiligenceStatement => {
            l.t("EUDR due diligence statement", "欧盟零毁林尽职调查声明")
        }
        DocumentType::Other => l.t("Other", "其他"),
    }
}

async fn document_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let bytes_max = state.documents.bytes_max();
    let mut html = String::with_capacity(8 * 1024);
    let _ = write!(
        html,
        "<div id=\"limits\" data-document-bytes-max=\"{bytes_max}\" hidden></div>"
    );
    form_start(
        &mut html,
        "document",
        l.t("Attach a document", "附加单证"),
        l.t(
            "Stores a trade document on the node and anchors its fingerprint in the log once your organisation signs it. Attach it to a lot or a shipment so that the people who may see those see it.",
            "把贸易单证存入节点，并在贵组织签署后把其指纹锚定到日志。把它附加到批次或货运上，有权查看这些的人即可看到。",
        ),
    );
    let types: Vec<(&str, &str)> = DocumentType::ALL
        .into_iter()
        .map(|t| (t.as_str(), type_label(l, t)))
        .collect();
    let mb = bytes_max / (1024 * 1024);
    let size_hint = match l {
        Lang::En => format!("At most {mb} MiB on this node; checked before it is sent."),
        Lang::Zh => format!("本节点最多接受 {mb} MiB；发送前即检查。"),
    };
    for f in [
        Field {
            id: "file",
            label: l.t("File", "文件"),
            hint: &size_hint,
            control: Control::Input("file", "required"),
        },
        Field {
            id: "type",
            label: l.t("Type", "类型"),
            hint: "",
            control: Control::Select(&types),
        },
        Field {
            id: "number",
            label: l.t("Document number", "单证编号"),
            hint: l.t(
                "As the issuer wrote it; 1 to 64 characters.",
                "签发方所写编号；1 至 64 个字符。",
            ),
            control: Control::Input("text", "required maxlength=\"64\" autocomplete=\"off\""),
        },
        Field {
            id: "attach",
            label: l.t("Attach to", "附加到"),
            hint: l.t(
                "A lot or a shipment of your organisation.",
                "贵组织的批次或货运。",
            ),
            control: Control::Select(&[("", l.t("Loading…", "加载中…"))]),
        },
    ] {
        field(&mut html, &f);
    }
    let _ = write!(
        html,
        "<div class=\"field\"><label><input type=\"checkbox\" id=\"sign\" name=\"sign\" disabled aria-describedby=\"sign-hint\"> {sign}</label>\
         <p class=\"hint\" id=\"sign-hint\">{sign_hint}</p></div>",
        sign = l.t(
            "Sign it now with the organisation's node-held key",
            "现在用组织存放在节点上的密钥签署"
        ),
        sign_hint = l.t(
            "Checking whether your organisation has a node-held signing key…",
            "正在检查贵组织是否有存放在节点上的签名密钥…"
        ),
    );
    form_end(&mut html, l, l.t("Upload the document", "上传单证"));
    page(
        l,
        l.t("Attach a document", "附加单证"),
        "/entry/documents/new",
        &html,
    )
}

async fn device_form(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let mut html = String::with_capacity(4 * 1024);
    form_start(
        &mut html,
        "device",
        l.t("Register a device", "登记设备"),
        l.t(
            "A sensor or cold-chain logger that signs its readings. Its public key is recorded in the log, and from then on the node accepts its signed readings.",
            "对读数签名的传感器或冷链记录仪。其公钥记入日志，此后节点接受其签名读数。",
        ),
    );
    for f in [
        Field {
            id: "device-id",
            label: l.t("Device id", "设备编号"),
            hint: l.t(
                "16 hex digits in lower case (0-9, a-f), as printed on the device.",
                "16 位小写十六进制数字（0-9、a-f），与设备上印的一致。",
            ),
            control: Control::Input(
                "text",
                "required maxlength=\"16\" autocomplete=\"off\" spellcheck=\"false\"",
            ),
        },
        Field {
            id: "public-key",
            label: l.t("Ed25519 public key", "Ed25519 公钥"),
            hint: l.t(
                "32 bytes as 64 hex digits, as the device shows it.",
                "32 字节，写成 64 位十六进制数字，与设备显示的一致。",
            ),
            control: Control::Input(
                "text",
                "required maxlength=\"128\" autocomplete=\"off\" spellcheck=\"false\"",
            ),
        },
        Field {
            id: "device-name",
            label: l.t("Name (optional)", "名称（可选）"),
            hint: "",
            control: Control::Input("text", "maxlength=\"200\""),
        },
    ] {
        field(&mut html, &f);
    }
    form_end(&mut html, l, l.t("Register the device", "登记设备"));
    page(
        l,
        l.t("Register a device", "登记设备"),
        "/entry/devices/new",
        &html,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_names_its_hint_and_error_line_and_escapes_its_text() {
        let mut html = String::new();
        field(
            &mut html,
            &Field {
                id: "gtin",
                label: "GTIN <14>",
                hint: "the \"last\" digit",
                control: Control::Input("text", "required"),
            },
        );
        assert!(html.contains("<label for=\"gtin\">GTIN &lt;14&gt;</label>"));
        assert!(html.contains("<p class=\"hint\" id=\"gtin-hint\">the &quot;last&quot; digit</p>"));
        assert!(html.contains("aria-describedby=\"gtin-hint gtin-error\""));
        assert!(html.contains("<p class=\"field-error\" id=\"gtin-error\" aria-live=\"polite\">"));
    }

    #[test]
    fn a_field_without_a_hint_names_only_its_error_line() {
        let mut html = String::new();
        field(
            &mut html,
            &Field {
                id: "kind",
                label: "Kind",
                hint: "",
                control: Control::Select(&[("a&b", "A & B")]),
            },
        );
        assert!(!html.contains("kind-hint"));
        assert!(
            html.contains("<select id=\"kind\" name=\"kind\" aria-describedby=\"kind-error\">")
        );
        assert!(html.contains("<option value=\"a&amp;b\">A &amp; B</option>"));
    }

    #[test]
    fn every_document_type_has_words_in_both_languages() {
        for t in DocumentType::ALL {
            for l in [Lang::En, Lang::Zh] {
                assert!(!type_label(l, t).is_empty(), "{t:?}");
            }
            assert_ne!(type_label(Lang::En, t), type_label(Lang::Zh, t), "{t:?}");
        }
    }
}

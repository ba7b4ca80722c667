//! The customs console (issue "Pages people use", item 2): the shipments declared to an
//! officer's authority, and one shipment in full — its trace graph, its cold chain, its
//! documents with their verification status, a check of a document the officer was handed, and
//! the export of the sealed evidence bundle.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `GET /console` | — (a page shell) | the list of shipments |
//! | `GET /console/shipments/{org}/{id}` | — (a page shell) | one shipment; 400 for an id that is not one |
//! | `GET /pages/console.js` | — | the console's script |
//! | `GET /v1/orgs/{org}/shipments/{id}/temperatures` | `ReadRecords`, if the caller sees the shipment (as `GET .../shipments/{id}`) | the temperature points of its custody window, for the chart |
//!
//! The pages hold no data: they are the shell ([`super::shell`]) with the console's labels in
//! the caller's language; [`CONSOLE_JS`] fills them in with the signed-in caller's token from
//! the JSON API — `GET /v1/whoami` (a caller who is neither a customs officer nor an auditor is
//! told in plain words that the console is not for its role), `GET /v1/shipments?declared_to=`
//! (an auditor: every shipment), `GET /v1/orgs/{org}/shipments/{id}`, `GET /trace/shipment:…`
//! (graph, custody windows with their cold chains, documents), the temperatures below,
//! `GET /v1/documents/{id}` (each document's history and signatures), `POST
//! /v1/verify/document` and `GET /v1/orgs/{org}/shipments/{id}/evidence`. Whatever the API
//! refuses, the page says so; the API alone decides what the caller may see.
//!
//! The temperatures are the readings the evidence bundle of the same shipment carries (every
//! signed reading of its devices from departure to arrival, or to now), thinned evenly to at
//! most [`super::CHART_POINTS_MAX`] points like the consumer page's chart: whoever may read the
//! shipment may export them all, so the chart shows nothing the bundle would not.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::render::{Lang, escape};
use super::shell::{self, Area, LangQuery, Shell};
use crate::access::{Caller, require, visibility};
use crate::auth::{Action, OrgId};
use crate::http::{ApiError, AppState, json_status};

/// The console's script.
pub const CONSOLE_JS: &str = include_str!("console.js");

/// The console's own CSS (the shell's is in the page's head): the list's table scrolls
/// sideways on a phone, the drop zone shows where a file goes, the graph and charts scale.
const STYLE: &str = "<style>\
#console{overflow-wrap:break-word}.table-wrap{overflow-x:auto}\
.filters{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:0 1rem}\
.drop-zone{border:2px dashed #6b6b63;border-radius:.5rem;padding:1rem;text-align:center;margin:.5rem 0}\
.drop-zone.over{border-color:#1e5631;background:#e3f1e6}\
.drop-zone input{max-width:24rem;margin:.4rem auto 0}\
.graph-wrap{overflow-x:auto}svg.chart{max-width:40rem;display:block}#trace-graph svg{min-width:50rem;max-width:none;width:100%}\
#trace-list li[tabindex]:focus{background:#fff3cd}.graph-node.focus rect{stroke:#f0a500;stroke-width:4}\
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.9rem;margin:.3rem 0}\
.legend span::before{content:'';display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;border-radius:.2rem;background:var(--c);vertical-align:-.1rem}\
.history{margin:.3rem 0 .6rem 1rem;font-size:.95rem}code{overflow-wrap:anywhere}\
</style>";

/// The routes of the console.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(list_page))
        .route("/console/shipments/{org}/{id}", get(shipment_page))
        .route(
            "/pages/console.js",
            get(|| async { shell::script(CONSOLE_JS) }),
        )
        .route(
            "/v1/orgs/{org}/shipments/{id}/temperatures",
            get(temperatures),
        )
}

fn org_id(what: &str, text: &str) -> Result<OrgId, ApiError> {
    text.parse()
        .map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))
}

/// The list of shipments: filters, the table, "more".
fn list_body(l: Lang) -> String {
    let mut body = String::with_capacity(4 * 1024);
    body.push_str(STYLE);
    let _ = write!(
        body,
        "<div id=\"console\" data-view=\"list\">\
         <div id=\"console-refusal\"></div>\
         <section id=\"filters\" aria-labelledby=\"filters-h\"><h2 id=\"filters-h\">{h}</h2>\
         <p class=\"hint\" id=\"scope\">{scope}</p>\
         <form id=\"filter-form\" role=\"search\" class=\"filters\">\
         <div><label for=\"f-status\">{status}</label><select id=\"f-status\" name=\"status\">\
         <option value=\"\">{any}</option><option value=\"planned\">{planned}</option>\
         <option value=\"departed\">{departed}</option><option value=\"arrived\">{arrived}</option></select></div>\
         <div><label for=\"f-origin\">{origin}</label><input id=\"f-origin\" name=\"origin\" maxlength=\"2\" autocomplete=\"off\" spellcheck=\"false\" aria-describedby=\"f-origin-hint f-origin-error\">\
         <p class=\"hint\" id=\"f-origin-hint\">{origin_hint}</p><p class=\"field-error\" id=\"f-origin-error\"></p></div>\
         <div><label for=\"f-text\">{text}</label><input id=\"f-text\" name=\"text\" type=\"search\" maxlength=\"100\" autocomplete=\"off\" aria-describedby=\"f-text-hint\">\
         <p class=\"hint\" id=\"f-text-hint\">{text_hint}</p></div></form></section>\
         <section id=\"shipments\" aria-labelledby=\"shipments-h\"><h2 id=\"shipments-h\">{list}</h2>\
         <p id=\"list-status\" role=\"status\" aria-live=\"polite\">{loading}</p>\
         <div class=\"table-wrap\"><table id=\"shipment-table\"><caption class=\"visually-hidden\">{list}</caption>\
         <thead><tr><th scope=\"col\">{shipment}</th><th scope=\"col\">{exporter}</th><th scope=\"col\">{consignee}</th>\
         <th scope=\"col\">{route}</th><th scope=\"col\">{lots}</th><th scope=\"col\">{departure}</th>\
         <th scope=\"col\">{arrival}</th><th scope=\"col\">{status}</th></tr></thead><tbody></tbody></table></div>\
         <button type=\"button\" id=\"more\" class=\"secondary\" hidden>{more}</button></section></div>",
        h = l.t("Find a shipment", "查找货物"),
        scope = l.t(
            "Shipments declared to your authority. Status is asked of the node; origin and text filter the shipments loaded so far.",
            "向贵机关申报的货物。状态由节点筛选；原产国和文字在已加载的货物中筛选。"
        ),
        status = l.t("Status", "状态"),
        any = l.t("Any", "全部"),
        planned = l.t("Planned", "计划中"),
        departed = l.t("Departed", "已启运"),
        arrived = l.t("Arrived", "已到达"),
        origin = l.t("Origin country", "原产国"),
        origin_hint = l.t(
            "Two letters (ISO 3166), e.g. CN.",
            "两个字母（ISO 3166），如 CN。"
        ),
        text = l.t("Search", "搜索"),
        text_hint = l.t(
            "Part of a shipment id, a consignee or an exporter.",
            "货物编号、收货人或出口商的一部分。"
        ),
        list = l.t("Shipments", "货物"),
        loading = l.t("Loading…", "正在加载……"),
        shipment = l.t("Shipment", "货物"),
        exporter = l.t("Exporter", "出口商"),
        consignee = l.t("Consignee", "收货人"),
        route = l.t("From → to", "起运国 → 目的国"),
        lots = l.t("Lots", "批次"),
        departure = l.t("Departed", "启运"),
        arrival = l.t("Arrived", "到达"),
        more = l.t("Load more", "加载更多"),
    );
    body
}

/// One shipment: summary, trace, cold chain, documents, the document check, evidence.
fn shipment_body(l: Lang, org: &OrgId, id: &OrgId) -> String {
    let mut body = String::with_capacity(6 * 1024);
    body.push_str(STYLE);
    let _ = write!(
        body,
        "<p><a href=\"/console?lang={code}\">{back}</a></p>\
         <div id=\"console\" data-view=\"shipment\" data-org=\"{org}\" data-id=\"{id}\">\
         <div id=\"console-refusal\"></div>\
         <section id=\"summary\" aria-labelledby=\"summary-h\"><h2 id=\"summary-h\">{summary_h} {org}/{id}</h2>\
         <div id=\"summary-body\" aria-live=\"polite\"><p>{loading}</p></div></section>\
         <section id=\"trace\" aria-labelledby=\"trace-h\"><h2 id=\"trace-h\">{trace_h}</h2>\
         <p class=\"hint\">{trace_hint}</p>\
         <div id=\"trace-status\" aria-live=\"polite\"><p>{loading}</p></div>\
         <div class=\"graph-wrap\" id=\"trace-graph\"></div>\
         <h3 id=\"trace-list-h\">{list_h}</h3><ul id=\"trace-list\" aria-labelledby=\"trace-list-h\"></ul></section>\
         <section id=\"cold-chain\" aria-labelledby=\"cold-h\"><h2 id=\"cold-h\">{cold_h}</h2>\
         <div id=\"cold-chain-body\" aria-live=\"polite\"><p>{loading}</p></div></section>\
         <section id=\"documents\" aria-labelledby=\"documents-h\"><h2 id=\"documents-h\">{documents_h}</h2>\
         <div id=\"documents-body\" aria-live=\"polite\"><p>{loading}</p></div></section>\
         <section id=\"check\" aria-labelledby=\"check-h\"><h2 id=\"check-h\">{check_h}</h2>\
         <p>{check_explain}</p>\
         <div id=\"drop-zone\" class=\"drop-zone\"><p>{drop}</p>\
         <label for=\"check-file\">{choose}</label>\
         <input type=\"file\" id=\"check-file\" aria-describedby=\"check-hint\">\
         <p class=\"hint\" id=\"check-hint\">{check_hint}</p></div>\
         <div id=\"check-result\" aria-live=\"polite\"></div></section>\
         <section id=\"evidence\" aria-labelledby=\"evidence-h\"><h2 id=\"evidence-h\">{evidence_h}</h2>\
         <p>{evidence_explain}</p>\
         <button type=\"button\" id=\"export-evidence\">{export}</button>\
         <div id=\"evidence-result\" aria-live=\"polite\"></div>\
         <p>{offline} <code>agritrace-verify evidence FILE</code></p>\
         <p class=\"hint\">{pin} <code>agritrace-verify evidence --policy POLICY FILE</code></p></section></div>",
        code = l.code(),
        back = l.t("← All shipments", "← 全部货物"),
        org = escape(org.as_str()),
        id = escape(id.as_str()),
        summary_h = l.t("Shipment", "货物"),
        loading = l.t("Loading…", "正在加载……"),
        trace_h = l.t("Trace", "追溯"),
        trace_hint = l.t(
            "Where the goods came from: plots, lots, the recorded events by business step, the shipments and places. The list below the drawing says the same for keyboards and screen readers.",
            "货物的来历：地块、批次、按业务步骤记录的事件、运输和地点。图下的列表以文字给出同样的内容，便于键盘和读屏软件使用。"
        ),
        list_h = l.t("The trace as a list", "追溯列表"),
        cold_h = l.t("Cold chain", "冷链"),
        documents_h = l.t("Documents", "单证"),
        check_h = l.t("Check a document you were handed", "核验收到的单证"),
        check_explain = l.t(
            "Drop the file here, or choose it. The browser computes its SHA-256 and asks the node which anchored document has exactly that content: one changed byte and nothing matches.",
            "将文件拖放到这里，或选择文件。浏览器计算其 SHA-256，并向节点查询哪份已锚定的单证内容与之完全相同：改动一个字节就不会匹配。"
        ),
        drop = l.t("Drop a file here", "将文件拖放到这里"),
        choose = l.t("Choose a file to check", "选择要核验的文件"),
        check_hint = l.t(
            "The file itself stays in this browser when it can hash it; otherwise it is sent to the node to be hashed, and not kept.",
            "浏览器能计算哈希时，文件本身不离开本浏览器；否则文件会发送给节点计算哈希，且不被保存。"
        ),
        evidence_h = l.t("Evidence bundle", "证据包"),
        evidence_explain = l.t(
            "One sealed file with everything needed to check this shipment's story without the network: events, signed readings, documents, keys, inclusion proofs and the cosigned checkpoint.",
            "一个密封文件，包含离线核验本批货物全部记录所需的一切：事件、已签名的读数、单证、密钥、包含证明和经共同签署的检查点。"
        ),
        export = l.t("Export evidence", "导出证据"),
        offline = l.t("To check it offline:", "离线核验："),
        pin = l.t(
            "With the trust policy your agency holds (the log key and witnesses it trusts), the check also says who vouched for it:",
            "使用贵机关持有的信任策略（所信任的日志密钥和见证方）核验，还能确认由谁担保："
        ),
    );
    body
}

async fn list_page(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let body = list_body(l);
    let html = shell::html(&Shell {
        lang: l,
        title: l.t("Customs console", "海关控制台"),
        path: "/console",
        area: Area::Console,
        body: &body,
        script: Some("/pages/console.js"),
        signed_in: true,
    });
    shell::respond(l, html)
}

async fn shipment_page(
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let org = org_id("organisation", &org)?;
    let id = org_id("shipment id", &id)?;
    let l = shell::lang_of(query.lang.as_deref(), &headers);
    let body = shipment_body(l, &org, &id);
    let path = format!("/console/shipments/{org}/{id}");
    let title = format!("{} {org}/{id}", l.t("Shipment", "货物"));
    let html = shell::html(&Shell {
        lang: l,
        title: &title,
        path: &path,
        area: Area::Console,
        body: &body,
        script: Some("/pages/console.js"),
        signed_in: true,
    });
    Ok(shell::respond(l, html))
}

/// `GET /v1/orgs/{org}/shipments/{id}/temperatures`: the custody window of a shipment the
/// caller sees (departure to arrival, or to now), its devices, the product's band, and at most
/// [`super::CHART_POINTS_MAX`] `[time_ms, centi_c]` points. Before departure there is no
/// window: no points.
async fn temperatures(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = org_id("organisation", &org)?;
    let id = org_id("shipment id", &id)?;
    require(&caller, Action::ReadRecords, None)?;
    let visibility = visibility(&state, &caller)?;
    // The same answers as `GET /v1/orgs/{org}/shipments/{id}`.
    let shipment = match state.trade.shipment(&org, &id)? {
        Some(shipment) if visibility.sees(&shipment.org, &shipment.declared_to) => shipment,
        None if visibility.sees(&org, &[]) => {
            return Err(ApiError::NotFound(format!("{org} has no shipment {id}")));
        }
        _ => {
            return Err(ApiError::Forbidden(format!(
                "{org} does not share this shipment with the caller"
            )));
        }
    };
    let mut band = None;
    for lot in &shipment.lots {
        if let Some(product) = state.master.product_by_gtin(lot.gtin)? {
            band = Some([product.storage_min_centi_c, product.storage_max_centi_c]);
            break;
        }
    }
    let node = crate::trace::shipment_node(&shipment.org, shipment.id.as_str());
    let Some(departure) = shipment.departure.clone() else {
        return Ok(json_status(
            StatusCode::OK,
            &json!({
                "shipment": node,
                "departed": false,
                "arrived": false,
                "devices": shipment.devices,
                "band_centi_c": band,
                "points": [],
                "points_max": super::CHART_POINTS_MAX,
            }),
        ));
    };
    let arrived = shipment.arrival.is_some();
    let from_ms = departure.time_ms;
    let to_ms = shipment
        .arrival
        .as_ref()
        .map_or_else(|| state.clock.now_ms(), |a| a.time_ms)
        .max(from_ms);
    let worker = state.clone();
    let devices = shipment.devices.clone();
    let points =
        tokio::task::spawn_blocking(move || super::chart_points(&worker, &devices, from_ms, to_ms))
            .await
            .map_err(super::internal)??;
    Ok(json_status(
        StatusCode::OK,
        &json!({
            "shipment": node,
            "departed": true,
            "arrived": arrived,
            "from_ms": from_ms,
            "to_ms": to_ms,
            "devices": shipment.devices,
            "band_centi_c": band,
            "points": points,
            "points_max": super::CHART_POINTS_MAX,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_carry_labels_in_their_language_and_no_data() {
        let org: OrgId = "mango-coop".parse().expect("an id");
        let id: OrgId = "s-2026-001".parse().expect("an id");
        let zh = shipment_body(Lang::Zh, &org, &id);
        assert!(zh.contains("导出证据"), "{zh}");
        assert!(zh.contains("data-org=\"mango-coop\" data-id=\"s-2026-001\""));
        assert!(zh.contains("<input type=\"file\" id=\"check-file\""));
        assert!(zh.contains("<label for=\"check-file\">"));
        let en = list_body(Lang::En);
        assert!(en.contains("<th scope=\"col\">Consignee</th>"), "{en}");
        assert!(en.contains("<label for=\"f-status\">Status</label>"));
        assert!(en.contains("aria-live=\"polite\""));
        // The shell only: rows come from the API, through the script.
        assert!(en.contains("<tbody></tbody>"));
    }

    #[test]
    fn ids_that_are_not_ids_are_refused() {
        for bad in ["", "A B", "<x>", "a/b"] {
            assert!(org_id("organisation", bad).is_err(), "{bad:?}");
        }
        assert!(org_id("organisation", "th-customs").is_ok());
    }
}

//! The shell of the signed-in pages (the customs console, data entry): one layout, one sign-in
//! page, one shared script.
//!
//! How signing in works: the sign-in page takes an API token (the same tokens every API client
//! uses), checks it against `GET /v1/whoami` and keeps it in the tab's `sessionStorage` (gone
//! when the tab closes). Pages are server-rendered in the caller's language (labels, forms,
//! headings, explanations); their scripts fill in the data by calling the JSON API with the
//! token as a bearer credential, so everything a page creates goes through the same API, the
//! same authorisation and the same EPCIS events as any other client. No cookie carries
//! authority, so no page can be made to act by another site (no CSRF); the pages' Content
//! Security Policy admits same-origin scripts only, which keeps injected markup from reading
//! the token.
//!
//! | route | answers |
//! |---|---|
//! | `GET /login[?next=/path]` | the sign-in page |
//! | `GET /pages/app.js` | the shared script: token, `api()` calls, errors in plain words, DOM helpers |

use std::fmt::Write as _;

use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::render::{Lang, escape};
use crate::http::AppState;

/// The shared script of the signed-in pages.
pub const APP_JS: &str = include_str!("app.js");

/// The Content Security Policy of every page: same-origin scripts and calls only, inline
/// styles (the pages carry their CSS inline), images from the page itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data: blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The shell's CSS: the consumer page's palette, plus forms and tables for desk work. The
/// `hidden` attribute wins over the `display` of buttons (a hidden "Sign out" stays hidden).
pub const STYLE: &str = "[hidden]{display:none!important}\
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafaf7}\
main{max-width:64rem;margin:0 auto;padding:1rem}\
header{background:#1e5631;color:#fff;padding:.75rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center}\
header h1{margin:0;font-size:1.25rem;flex:1 1 auto}header a,header button{color:#fff}\
header nav{display:flex;gap:1rem;flex-wrap:wrap}header button{background:none;border:1px solid #fff;border-radius:.3rem;font:inherit;padding:.1rem .6rem;cursor:pointer}\
section{background:#fff;border:1px solid #d0d0c8;border-radius:.5rem;padding:.75rem 1rem;margin:1rem 0}\
h2{font-size:1.1rem;margin:.2rem 0 .5rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem 1rem;margin:0}\
dt{font-weight:600}dd{margin:0}\
label{display:block;font-weight:600;margin:.6rem 0 .2rem}\
input,select,textarea{font:inherit;padding:.35rem .5rem;border:1px solid #6b6b63;border-radius:.3rem;width:100%;box-sizing:border-box;background:#fff;color:#1b1b1b}\
input[type=checkbox],input[type=radio]{width:auto}textarea{min-height:6rem}\
input[aria-invalid=true],select[aria-invalid=true],textarea[aria-invalid=true]{border:2px solid #a4000f}\
.hint{font-size:.9rem;color:#4a4a4a;margin:.1rem 0}.field-error{color:#a4000f;font-size:.9rem;margin:.1rem 0;min-height:0}\
button,.button{font:inherit;background:#1e5631;color:#fff;border:0;border-radius:.3rem;padding:.45rem 1rem;cursor:pointer;text-decoration:none;display:inline-block;margin:.6rem .4rem 0 0}\
button.secondary{background:#fff;color:#1e5631;border:1px solid #1e5631}button:disabled{background:#8a8a82;cursor:not-allowed}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e2e2da;vertical-align:top}\
th{font-weight:600;background:#f1f1ea}\
.warn{background:#fff3cd;border-color:#8a6d00}.ok{color:#1e5631;font-weight:700}.bad{color:#a4000f;font-weight:700}\
.notice{padding:.5rem .75rem;border-radius:.3rem;margin:.5rem 0}.notice.ok{background:#e3f1e6}.notice.bad{background:#fbe4e6}\
svg{max-width:100%;height:auto}small{color:#4a4a4a}a{color:#0b4f8a}\
a:focus,button:focus,input:focus,select:focus,textarea:focus,[tabindex]:focus{outline:3px solid #f0a500;outline-offset:1px}\
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}";

/// Which part of the signed-in pages a page belongs to (its navigation entry is marked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The sign-in page.
    SignIn,
    /// The customs console.
    Console,
    /// Data entry for producers and exporters.
    Entry,
}

/// A signed-in page to render.
#[derive(Debug)]
pub struct Shell<'a> {
    /// The language the page is written in.
    pub lang: Lang,
    /// The page title (plain text; escaped here).
    pub title: &'a str,
    /// The page's path without its query (the language switch links to it).
    pub path: &'a str,
    /// The navigation entry marked as current.
    pub area: Area,
    /// The page's body (already-escaped HTML), placed inside `<main>`.
    pub body: &'a str,
    /// The page's own script (a same-origin path), loaded after [`APP_JS`].
    pub script: Option<&'a str>,
    /// Whether the page needs a signed-in caller (its script sends others to `/login`).
    pub signed_in: bool,
}

/// The whole page: head, header with navigation and the language switch, `<main>`, scripts.
#[must_use]
pub fn html(shell: &Shell<'_>) -> String {
    let l = shell.lang;
    let mut html = String::with_capacity(8 * 1024 + shell.body.len());
    let current = |area: Area| {
        if area == shell.area {
            " aria-current=\"page\""
        } else {
            ""
        }
    };
    let _ = write!(
        html,
        "<!doctype html><html lang=\"{tag}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · agritrace</title><style>{STYLE}</style></head>\
         <body data-signed-in=\"{signed_in}\"><a class=\"visually-hidden\" href=\"#main\">{skip}</a>\
         <header><h1>{title}</h1><nav aria-label=\"{nav_label}\">\
         <a href=\"/console?lang={code}\"{console_current}>{console}</a>\
         <a href=\"/entry?lang={code}\"{entry_current}>{entry}</a>\
         <a href=\"{path}?lang={other}\" hreflang=\"{other_tag}\" lang=\"{other_tag}\" id=\"lang-switch\">{other_label}</a>\
         <span id=\"who\" aria-live=\"polite\"></span>\
         <button type=\"button\" id=\"sign-out\" hidden>{sign_out}</button></nav></header>\
         <main id=\"main\">{body}</main><script src=\"/pages/app.js\"></script>",
        tag = l.tag(),
        title = escape(shell.title),
        signed_in = shell.signed_in,
        skip = l.t("Skip to content", "跳到正文"),
        nav_label = l.t("Pages", "页面"),
        code = l.code(),
        console_current = current(Area::Console),
        console = l.t("Customs console", "海关控制台"),
        entry_current = current(Area::Entry),
        entry = l.t("Data entry", "数据录入"),
        path = escape(shell.path),
        other = l.other().code(),
        other_tag = l.other().tag(),
        other_label = l.t("中文", "English"),
        sign_out = l.t("Sign out", "退出"),
        body = shell.body,
    );
    if let Some(script) = shell.script {
        let _ = write!(html, "<script src=\"{}\"></script>", escape(script));
    }
    html.push_str("</body></html>");
    html
}

/// The language of a page: `?lang=` wins, then `Accept-Language`, then English.
#[must_use]
pub fn lang_of(query: Option<&str>, headers: &HeaderMap) -> Lang {
    Lang::choose(
        query,
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// A page as a response: HTML, its language, no caching (it may hold private data once its
/// script has run), the pages' Content Security Policy.
#[must_use]
pub fn respond(lang: Lang, html: String) -> Response {
    let mut response = Response::new(Body::from(html));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.tag()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A same-origin script as a response.
#[must_use]
pub fn script(source: &'static str) -> Response {
    let mut response = Response::new(Body::from(source));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The routes of the shell.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login))
        .route("/pages/app.js", get(|| async { script(APP_JS) }))
}

/// `?lang=` of a page.
#[derive(Debug, Deserialize)]
pub struct LangQuery {
    /// `zh` or `en`.
    pub lang: Option<String>,
}

async fn login(Query(query): Query<LangQuery>, headers: HeaderMap) -> Response {
    let l = lang_of(query.lang.as_deref(), &headers);
    let body = format!(
        "<section><h2>{h}</h2><p>{explain}</p>\
         <form id=\"login-form\" novalidate><label for=\"token\">{label}</label>\
         <p class=\"hint\" id=\"token-hint\">{hint}</p>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\" required aria-describedby=\"token-hint login-error\">\
         <p class=\"field-error\" id=\"login-error\" role=\"alert\"></p>\
         <button type=\"submit\">{submit}</button></form></section>",
        h = l.t("Sign in", "登录"),
        explain = l.t(
            "Sign in with the API token your organisation's administrator gave you. It stays in this browser tab only and is forgotten when the tab closes.",
            "请使用贵组织管理员发给您的 API 令牌登录。令牌只保存在本浏览器标签页中，关闭标签页即被清除。"
        ),
        label = l.t("API token", "API 令牌"),
        hint = l.t(
            "It starts with agt_ (the token, not its id).",
            "以 agt_ 开头（是令牌本身，而不是令牌编号）。"
        ),
        submit = l.t("Sign in", "登录"),
    );
    let html = html(&Shell {
        lang: l,
        title: l.t("Sign in", "登录"),
        path: "/login",
        area: Area::SignIn,
        body: &body,
        script: None,
        signed_in: false,
    });
    respond(l, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_escapes_what_it_is_given_and_links_the_other_language() {
        let page = html(&Shell {
            lang: Lang::Zh,
            title: "<b>x</b>",
            path: "/console/\"a\"",
            area: Area::Console,
            body: "<p>ok</p>",
            script: Some("/pages/console.js"),
            signed_in: true,
        });
        assert!(page.contains("<title>&lt;b&gt;x&lt;/b&gt; · agritrace</title>"));
        assert!(page.contains("href=\"/console/&quot;a&quot;?lang=en\""));
        assert!(page.contains("<html lang=\"zh-Hans\">"));
        assert!(page.contains("<a href=\"/console?lang=zh\" aria-current=\"page\">"));
        assert!(page.contains("<main id=\"main\"><p>ok</p></main>"));
        let app = page.find("/pages/app.js").expect("the shared script");
        let own = page.find("/pages/console.js").expect("the page's script");
        assert!(app < own, "the shared script loads first");
    }
}

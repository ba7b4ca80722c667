// The shared script of the signed-in pages (customs console, data entry): keeps the caller's
// API token in this tab's sessionStorage, calls the node's JSON API with it, explains API
// errors in plain words, and builds DOM from data without ever parsing data as HTML. Every
// page's own script uses `window.agritrace`.
"use strict";
(function () {
  const TOKEN = "agritrace.token";
  const WHO = "agritrace.whoami";
  const lang = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
  const t = (en, zh) => (lang === "zh" ? zh : en);

  const token = () => sessionStorage.getItem(TOKEN);
  const who = () => {
    try {
      return JSON.parse(sessionStorage.getItem(WHO) || "null");
    } catch (_) {
      return null;
    }
  };
  const forget = () => {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(WHO);
  };

  /** A same-origin path to go back to after signing in (anything else is ignored). */
  const safeNext = (next) =>
    typeof next === "string" && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\")
      ? next
      : null;
  const loginUrl = () =>
    "/login?lang=" + lang + "&next=" + encodeURIComponent(location.pathname + location.search);
  /** Sends a caller without a token to the sign-in page; whether the page may go on. */
  const requireLogin = () => {
    if (token()) return true;
    location.replace(loginUrl());
    return false;
  };
  const home = (whoami) => {
    const roles = (whoami && whoami.roles) || [];
    return (roles.includes("customs") || roles.includes("auditor") ? "/console" : "/entry") + "?lang=" + lang;
  };

  /**
   * Calls the API. `opts`: method, json (a value sent as JSON), body (sent as is: FormData,
   * Blob), headers, accept, raw (answer a Blob), noRedirect (a 401 does not sign out).
   * Answers {ok, status, headers, data, problem}; never throws.
   */
  async function api(path, opts = {}) {
    const headers = Object.assign({ Accept: opts.accept || "application/json" }, opts.headers || {});
    const bearer = opts.token || token();
    if (bearer) headers.Authorization = "Bearer " + bearer;
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, { method: opts.method || "GET", headers, body });
    } catch (_) {
      return { ok: false, status: 0, headers: new Headers(), data: null, problem: null };
    }
    if (response.status === 401 && !opts.noRedirect) {
      forget();
      location.replace(loginUrl());
    }
    const type = response.headers.get("Content-Type") || "";
    let data = null;
    let problem = null;
    if (response.ok) {
      if (opts.raw) data = await response.blob();
      else if (type.includes("json")) data = await response.json().catch(() => null);
      else data = await response.text();
    } else if (type.includes("json")) {
      problem = await response.json().catch(() => null);
    }
    return { ok: response.ok, status: response.status, headers: response.headers, data, problem };
  }

  /** What went wrong with an API call, in plain words (the API's own detail after it). */
  function explain(result) {
    const detail = result.problem && (result.problem.detail || result.problem.title);
    const plain = {
      0: t("The node could not be reached. Check the connection and try again.", "无法连接节点。请检查网络后重试。"),
      400: t("Something in the request is not right.", "请求中有内容不正确。"),
      401: t("Your sign-in is no longer valid. Sign in again.", "登录已失效，请重新登录。"),
      403: t("Your organisation or role may not do this.", "您的组织或角色无权执行此操作。"),
      404: t("Not found, or not shared with your organisation.", "未找到，或未与贵组织共享。"),
      409: t("This already exists, or conflicts with what is recorded.", "已存在，或与已记录的内容冲突。"),
      413: t("This is too large for the node to accept.", "内容过大，节点无法接收。"),
      415: t("The node does not accept this kind of content here.", "此处不接受这种内容类型。"),
      422: t("The node understood the request but cannot do it.", "节点理解了请求，但无法执行。"),
      429: t("Too many requests. Wait a moment and try again.", "请求过多，请稍后再试。"),
      503: t("The log has not caught up yet. Try again in a few seconds.", "日志尚未更新，请几秒后再试。"),
    }[result.status] || t("The node answered with an error.", "节点返回了错误。");
    return detail ? plain + " " + detail : plain;
  }

  /** Builds an element: attributes (`text` sets textContent, `on*` adds listeners), children. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  /** Shows a notice (`ok` or `bad`) in `target`, replacing what it held. */
  function notice(target, kind, text) {
    target.replaceChildren(el("p", { class: "notice " + kind, role: kind === "bad" ? "alert" : "status", text }));
  }

  /** `YYYY-MM-DD HH:MM UTC` of Unix ms or an RFC 3339 time. */
  function when(value) {
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  // The header: who is signed in, and signing out.
  const signOut = document.getElementById("sign-out");
  const whoSpan = document.getElementById("who");
  const current = who();
  if (token() && current) {
    if (whoSpan) whoSpan.textContent = current.member + " @ " + current.org;
    if (signOut) {
      signOut.hidden = false;
      signOut.addEventListener("click", () => {
        forget();
        location.assign("/login?lang=" + lang);
      });
    }
  }
  if (document.body.dataset.signedIn === "true") requireLogin();

  // The sign-in page.
  const form = document.getElementById("login-form");
  if (form) {
    const input = document.getElementById("token");
    const error = document.getElementById("login-error");
    const fail = (text) => {
      input.setAttribute("aria-invalid", "true");
      error.textContent = text;
      input.focus();
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return fail(t("Enter your API token.", "请输入 API 令牌。"));
      if (!/^agt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/.test(value)) {
        return fail(
          t(
            "This does not look like an API token: it starts with agt_ and is 64 characters long.",
            "这不像 API 令牌：令牌以 agt_ 开头，长 64 个字符。"
          )
        );
      }
      const result = await api("/v1/whoami", { token: value, noRedirect: true });
      if (!result.ok) {
        return fail(
          result.status === 401
            ? t("This token was not accepted: it may be mistyped or revoked.", "令牌未被接受：可能输入有误或已被撤销。")
            : explain(result)
        );
      }
      sessionStorage.setItem(TOKEN, value);
      sessionStorage.setItem(WHO, JSON.stringify(result.data));
      const next = safeNext(new URLSearchParams(location.search).get("next"));
      location.assign(next || home(result.data));
    });
  }

  window.agritrace = { lang, t, token, who, api, explain, el, notice, when, requireLogin, safeNext };
})();

// The customs console's script: fills in the console's pages (/console, the list of shipments
// declared to the officer's authority; /console/shipments/{org}/{id}, one shipment) from the
// node's JSON API with the signed-in caller's token, through `window.agritrace` (app.js). It
// draws the trace graph and the cold chain charts as inline SVG, checks a document the officer
// was handed against the anchored documents, and downloads the shipment's sealed evidence
// bundle. Data is never parsed as HTML: every value goes into textContent or an attribute.
"use strict";
(function () {
  const A = window.agritrace;
  const root = document.getElementById("console");
  if (!A || !root || !A.token()) return; // app.js has sent a caller without a token to /login
  const { t, api, explain, el, notice, when, lang } = A;
  const enc = encodeURIComponent;
  const SVG = "http://www.w3.org/2000/svg";
  /** Shipments asked for per page of the list. */
  const PAGE = 50;
  /** Most nodes drawn per column of the trace graph (the list shows them all, up to LIST_MAX). */
  const COLUMN_MAX = 40;
  /** Most entries of the trace's list. */
  const LIST_MAX = 500;
  /** Largest file hashed in the browser (bigger ones are sent to the node to hash). */
  const HASH_BYTES_MAX = 256 * 1024 * 1024;

  /** An SVG element with attributes and children (text children become text nodes). */
  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  const centi = (c) => (Number(c) / 100).toFixed(1);
  /**
   * `YYYY-MM-DD HH:MM:SS UTC` of Unix ms or an RFC 3339 time, with milliseconds when `fine`
   * (a logger may send several readings a second).
   */
  const whenSeconds = (value, fine = false) => {
    const date = new Date(value);
    return Number.isNaN(date.getTime())
      ? String(value || "")
      : date.toISOString().slice(0, fine ? 23 : 19).replace("T", " ") + " UTC";
  };
  /** A duration in plain words. */
  const duration = (ms) => {
    const n = Number(ms) || 0;
    if (n < 1_000) return `${n} ms`;
    if (n < 60_000) return `${(n / 1_000).toFixed(1)} s`;
    if (n < 3_600_000) return `${Math.round(n / 60_000)} min`;
    return `${(n / 3_600_000).toFixed(1)} h`;
  };
  const statusName = (s) =>
    ({
      planned: t("Planned", "计划中"),
      departed: t("Departed", "已启运"),
      arrived: t("Arrived", "已到达"),
    })[s] || String(s || "");
  const docTypeName = (type) =>
    ({
      certificate_of_origin: t("Certificate of origin", "原产地证书"),
      phytosanitary_certificate: t("Phytosanitary certificate", "植物检疫证书"),
      commercial_invoice: t("Commercial invoice", "商业发票"),
      packing_list: t("Packing list", "装箱单"),
      bill_of_lading: t("Bill of lading", "提单"),
      fsma204_record: t("FSMA 204 record", "FSMA 204 记录"),
      eudr_due_diligence_statement: t("EUDR due diligence statement", "欧盟无毁林尽职调查声明"),
      other: t("Other document", "其他单证"),
    })[type] || String(type || "");
  const docStatusName = (s) =>
    ({
      pending: t("pending: not yet signed, not on the log", "待签署：尚未记入日志"),
      valid: t("valid", "有效"),
      revoked: t("REVOKED by its issuer", "已被签发方撤销"),
      superseded: t("superseded by a newer version", "已被新版本取代"),
    })[s] || String(s || "");
  /** The last segment of a CBV URI (`urn:epcglobal:cbv:bizstep:shipping` → `shipping`). */
  const term = (v) => (typeof v === "string" ? v.split(/[:/]/).pop() : "");
  const stepName = (step) =>
    ({
      commissioning: t("Harvested", "采收"),
      harvesting: t("Harvested", "采收"),
      packing: t("Packed", "包装"),
      shipping: t("Shipped", "发运"),
      departing: t("Departed", "启运"),
      arriving: t("Arrived", "到达"),
      receiving: t("Received", "收货"),
      storing: t("Stored", "仓储"),
      inspecting: t("Inspected", "检验"),
      cooling: t("Cooled", "预冷"),
      transforming: t("Transformed", "加工"),
    })[step] || (step ? step : t("Recorded", "记录"));

  /** Shows the plain-words refusal and hides the rest of the page. */
  function refuse(heading, text) {
    for (const section of root.querySelectorAll("section")) section.hidden = true;
    document.getElementById("console-refusal").replaceChildren(
      el(
        "section",
        { class: "warn", id: "refusal", role: "alert" },
        el("h2", { text: heading }),
        el("p", { text }),
        el(
          "p",
          {},
          el("a", { href: "/entry?lang=" + lang, text: t("Go to data entry", "前往数据录入") }),
          " · ",
          el("a", {
            href: "/login?lang=" + lang + "&next=" + enc(location.pathname + location.search),
            text: t("Sign in with another token", "使用其他令牌登录"),
          }),
        ),
      ),
    );
  }

  /** Who is signed in, or null after saying why the console is not for them. */
  async function caller() {
    const result = await api("/v1/whoami");
    if (!result.ok) {
      refuse(t("The console could not start", "控制台无法启动"), explain(result));
      return null;
    }
    const me = result.data;
    const roles = me.roles || [];
    if (!roles.includes("customs") && !roles.includes("auditor")) {
      refuse(
        t("This console is for customs officers and auditors", "此控制台供海关官员和审计人员使用"),
        t(
          `You are signed in as ${me.member} of ${me.org}, with the role ${roles.join(", ") || "none"}. ` +
            "The customs console shows the shipments declared to a customs authority; your role may not see them here. " +
            "Use the data entry pages for your organisation's records, or sign in with a customs officer's or an auditor's token.",
          `您以 ${me.org} 的 ${me.member} 身份登录，角色为 ${roles.join("、") || "无"}。` +
            "海关控制台显示向海关机关申报的货物，您的角色无权在此查看。" +
            "请使用数据录入页面处理贵组织的记录，或使用海关官员或审计人员的令牌登录。",
        ),
      );
      return null;
    }
    return me;
  }

  // ---------------------------------------------------------------- the list of shipments

  async function listView(me) {
    const auditor = me.roles.includes("auditor") && !me.roles.includes("customs");
    const tbody = document.querySelector("#shipment-table tbody");
    const status = document.getElementById("list-status");
    const more = document.getElementById("more");
    const statusFilter = document.getElementById("f-status");
    const origin = document.getElementById("f-origin");
    const originError = document.getElementById("f-origin-error");
    const text = document.getElementById("f-text");
    if (auditor) {
      document.getElementById("scope").textContent = t(
        "As an auditor you see every shipment on the node. Status is asked of the node; origin and text filter the shipments loaded so far.",
        "作为审计人员，您可以看到节点上的全部货物。状态由节点筛选；原产国和文字在已加载的货物中筛选。",
      );
    }
    let shipments = [];
    let next = null;
    let generation = 0;

    const row = (s) => {
      const lots = (s.lots || []).map((l) => `${l.gtin}/${l.lot}`);
      const shown = lots.length > 3 ? lots.slice(0, 3).join(", ") + ` (+${lots.length - 3})` : lots.join(", ");
      const stop = (x) => (x ? `${when(x.time_ms)} · ${x.location}` : "—");
      return el(
        "tr",
        { dataset: { shipment: `${s.org}/${s.id}` } },
        el(
          "th",
          { scope: "row" },
          el("a", { href: `/console/shipments/${enc(s.org)}/${enc(s.id)}?lang=${lang}`, text: s.id }),
        ),
        el("td", { text: s.org }),
        el("td", { text: `${s.consignee.name} (${s.consignee.country})` }),
        el("td", { text: `${s.origin_country} → ${s.destination_country}` }),
        el("td", { text: shown }),
        el("td", { text: stop(s.departure) }),
        el("td", { text: stop(s.arrival) }),
        el("td", { text: statusName(s.status) }),
      );
    };

    function render() {
      const country = origin.value.trim().toUpperCase();
      const countryOk = country === "" || /^[A-Z]{2}$/.test(country);
      origin.setAttribute("aria-invalid", countryOk ? "false" : "true");
      originError.textContent = countryOk
        ? ""
        : t("A country is two letters, e.g. CN; the origin filter is off until then.", "国家代码为两个字母，如 CN；在此之前不按原产国筛选。");
      const words = text.value.trim().toLowerCase();
      const shown = shipments.filter(
        (s) =>
          (!countryOk || country === "" || s.origin_country === country) &&
          (words === "" ||
            [s.id, s.org, s.consignee && s.consignee.name].some((v) => String(v || "").toLowerCase().includes(words))),
      );
      tbody.replaceChildren(...shown.map(row));
      more.hidden = !next;
      if (shipments.length === 0) {
        status.textContent = auditor
          ? t("No shipment is recorded on the node yet.", "节点上尚无货物记录。")
          : t("No shipment is declared to your authority (with this status).", "尚无（此状态的）货物向贵机关申报。");
      } else {
        status.textContent =
          t(`Showing ${shown.length} of ${shipments.length} shipments loaded.`, `已加载 ${shipments.length} 批货物，显示 ${shown.length} 批。`) +
          (next ? " " + t("More are on the node: “Load more”.", "节点上还有更多：请点“加载更多”。") : "");
      }
    }

    async function load(reset) {
      const mine = reset ? ++generation : generation;
      if (reset) {
        shipments = [];
        next = null;
      }
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (!auditor) query.set("declared_to", me.org);
      if (statusFilter.value) query.set("status", statusFilter.value);
      if (next) query.set("next", next);
      more.disabled = true;
      status.textContent = t("Loading…", "正在加载……");
      const result = await api("/v1/shipments?" + query);
      if (mine !== generation) return; // a newer filter has started over
      more.disabled = false;
      if (!result.ok) {
        notice(status, "bad", explain(result));
        return;
      }
      shipments = shipments.concat(result.data.shipments || []);
      next = result.data.next || null;
      render();
    }

    document.getElementById("filter-form").addEventListener("submit", (event) => event.preventDefault());
    statusFilter.addEventListener("change", () => load(true));
    origin.addEventListener("input", render);
    text.addEventListener("input", render);
    more.addEventListener("click", () => load(false));
    await load(true);
  }

  // ---------------------------------------------------------------- one shipment

  function summary(target, result) {
    if (!result.ok) {
      notice(target, "bad", explain(result));
      return;
    }
    const s = result.data;
    const stop = (x) => (x ? `${x.location}, ${when(x.time_ms)}` : "—");
    const list = (items) => (items && items.length ? items.join(", ") : "—");
    const pairs = [
      [t("Exporter", "出口商"), s.org],
      [t("Consignee", "收货人"), `${s.consignee.name} (${s.consignee.country})${s.consignee.org ? " · " + s.consignee.org : ""}`],
      [t("Countries", "国家"), `${s.origin_country} → ${s.destination_country}`],
      [t("Declared to", "申报至"), list(s.declared_to)],
      [t("Containers", "集装箱"), list(s.containers)],
      [t("Logistic units (SSCC)", "物流单元（SSCC）"), list(s.ssccs)],
      [t("Lots", "批次"), list((s.lots || []).map((l) => `${l.gtin}/${l.lot}`))],
      [t("Devices", "设备"), list(s.devices)],
      [t("Planned departure", "计划启运"), stop(s.planned_departure)],
      [t("Departed", "启运"), stop(s.departure)],
      [t("Arrived", "到达"), stop(s.arrival)],
      [t("Status", "状态"), statusName(s.status)],
    ];
    target.replaceChildren(el("dl", {}, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
  }

  /** The objects an EPCIS event names, in any role. */
  function eventObjects(e) {
    const out = [];
    const add = (v) => typeof v === "string" && out.push(v);
    for (const key of ["epcList", "childEPCs", "inputEPCList", "outputEPCList"]) (e[key] || []).forEach(add);
    for (const key of ["quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"]) {
      (e[key] || []).forEach((q) => q && add(q.epcClass));
    }
    add(e.parentID);
    return out;
  }

  const KINDS = {
    plot: { column: 0, color: "#7fb069" },
    lot: { column: 1, color: "#f6c453" },
    object: { column: 1, color: "#f6c453" },
    event: { column: 2, color: "#9cc3e6" },
    location: { column: 3, color: "#d9c2e9" },
    container: { column: 4, color: "#f4a582" },
    shipment: { column: 4, color: "#f4a582" },
  };
  const kindName = (kind) =>
    ({
      plot: t("Plot", "地块"),
      lot: t("Lot", "批次"),
      object: t("Goods", "货品"),
      event: t("Event", "事件"),
      location: t("Place", "地点"),
      container: t("Container", "集装箱"),
      shipment: t("Shipment", "货物运输"),
    })[kind] || kind;
  const edgeName = (kind) =>
    ({
      origin_of: t("origin of", "产出"),
      carried_by: t("carried by", "由其运输"),
      packed_into: t("packed into", "装入"),
      transformed_into: t("transformed into", "加工为"),
      instance_of: t("instance of", "属于"),
      names: t("recorded in", "记录于"),
      at: t("happened at", "发生于"),
    })[kind] || kind;

  /** The short label of a node id: the lot of a Digital Link, the last part of anything else. */
  function shortLabel(id) {
    const lot = /\/01\/(\d{14})\/10\/([^/?]+)/.exec(id);
    if (lot) return decodeURIComponent(lot[2]);
    const serial = /\/01\/(\d{14})\/21\/([^/?]+)/.exec(id);
    if (serial) return decodeURIComponent(serial[2]);
    return id.replace(/^(shipment|container|plot):/, "").replace(/^urn:epc:id:[a-z]+:/, "");
  }

  /** The graph of a trace as nodes (with columns) and links, events and places included. */
  function graphOf(trace) {
    const nodes = new Map();
    const links = [];
    for (const n of trace.nodes || []) {
      nodes.set(n.id, { id: n.id, kind: KINDS[n.kind] ? n.kind : "object", label: shortLabel(n.id), detail: n.id });
    }
    for (const e of trace.edges || []) links.push({ from: e.from, to: e.to, kind: e.kind });
    for (const place of trace.locations || []) {
      nodes.set("location:" + place, { id: "location:" + place, kind: "location", label: shortLabel(place), detail: place });
    }
    (trace.events || []).forEach((record, index) => {
      const e = record.event || {};
      const id = "event:" + (record.eventID || index);
      const step = term(e.bizStep);
      nodes.set(id, {
        id,
        kind: "event",
        label: stepName(step),
        detail: `${e.type || ""} ${step} ${e.eventTime || ""}`.trim(),
        time: e.eventTime || "",
        logIndex: record.log_index,
      });
      for (const object of eventObjects(e)) if (nodes.has(object)) links.push({ from: object, to: id, kind: "names" });
      const place = (e.bizLocation && e.bizLocation.id) || (e.readPoint && e.readPoint.id);
      if (place && nodes.has("location:" + place)) links.push({ from: id, to: "location:" + place, kind: "at" });
    });
    return { nodes, links: links.filter((l) => nodes.has(l.from) && nodes.has(l.to)) };
  }

  function drawGraph(target, graph) {
    const columns = [[], [], [], [], []];
    for (const n of graph.nodes.values()) columns[KINDS[n.kind].column].push(n);
    columns[2].sort((a, b) => String(a.time).localeCompare(String(b.time)));
    const heads = [
      t("Plots", "地块"),
      t("Lots and goods", "批次与货品"),
      t("Events (by business step)", "事件（按业务步骤）"),
      t("Places", "地点"),
      t("Shipments, containers", "运输与集装箱"),
    ];
    const COL_W = 196;
    const NODE_W = 172;
    const NODE_H = 34;
    const GAP = 12;
    const TOP = 30;
    const drawn = columns.map((c) => c.slice(0, COLUMN_MAX));
    const rows = Math.max(1, ...drawn.map((c, i) => c.length + (columns[i].length > c.length ? 1 : 0)));
    const width = COL_W * columns.length;
    const at = new Map();
    drawn.forEach((column, ci) =>
      column.forEach((n, ri) => at.set(n.id, { x: ci * COL_W + 10, y: TOP + ri * (NODE_H + GAP) })),
    );
    // A link that would cross a column runs in a lane of its own under the nodes.
    const LANE = 7;
    const long = graph.links.filter((l) => at.has(l.from) && at.has(l.to) && Math.abs(at.get(l.from).x - at.get(l.to).x) > COL_W);
    const bottom = TOP + rows * (NODE_H + GAP);
    const height = bottom + long.length * LANE + 10;
    const picture = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-labelledby": "trace-graph-title",
      "aria-describedby": "trace-list-h",
    });
    picture.appendChild(
      svg("title", {
        id: "trace-graph-title",
        text: t(
          `Trace graph: ${graph.nodes.size} nodes and ${graph.links.length} links; the list below gives the same.`,
          `追溯图：${graph.nodes.size} 个节点、${graph.links.length} 条连线；下方列表给出相同内容。`,
        ),
      }),
    );
    picture.appendChild(
      svg(
        "defs",
        {},
        svg(
          "marker",
          { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" },
          svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#4a4a4a" }),
        ),
      ),
    );
    heads.forEach((h, i) =>
      picture.appendChild(svg("text", { x: i * COL_W + 10, y: 18, "font-size": 12, "font-weight": 600, text: h })),
    );
    for (const link of graph.links) {
      const a = at.get(link.from);
      const b = at.get(link.to);
      if (!a || !b) continue;
      let d;
      const lane = long.indexOf(link);
      if (lane >= 0) {
        const y = bottom + lane * LANE;
        d = `M${a.x + NODE_W / 2},${a.y + NODE_H} V${y} H${b.x + NODE_W / 2} V${b.y + NODE_H}`;
      } else if (a.x === b.x) {
        // Same column: a loop out to the right.
        const x = a.x + NODE_W;
        d = `M${x},${a.y + NODE_H / 2} C${x + 24},${a.y + NODE_H / 2} ${x + 24},${b.y + NODE_H / 2} ${x},${b.y + NODE_H / 2}`;
      } else {
        const [l, r] = a.x < b.x ? [a, b] : [b, a];
        const x1 = l.x + NODE_W;
        const x2 = r.x;
        const y1 = l.y + NODE_H / 2;
        const y2 = r.y + NODE_H / 2;
        const mid = (x1 + x2) / 2;
        d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
      }
      picture.appendChild(
        svg(
          "path",
          {
            class: "graph-edge",
            d,
            fill: "none",
            stroke: "#4a4a4a",
            "stroke-opacity": 0.6,
            "stroke-width": 1.4,
            "marker-end": a.x <= b.x || lane >= 0 ? "url(#arrow)" : null,
            "marker-start": a.x > b.x && lane < 0 ? "url(#arrow)" : null,
          },
          svg("title", { text: `${graph.nodes.get(link.from).label} ${edgeName(link.kind)} ${graph.nodes.get(link.to).label}` }),
        ),
      );
    }
    for (const [id, p] of at) {
      const n = graph.nodes.get(id);
      const label = n.label.length > 21 ? n.label.slice(0, 20) + "…" : n.label;
      const small = n.kind === "event" ? `${kindName(n.kind)} · ${whenSeconds(n.time).slice(0, 16)}` : kindName(n.kind);
      picture.appendChild(
        svg(
          "g",
          { class: "graph-node", "data-node": id, "data-kind": n.kind },
          svg("title", { text: `${kindName(n.kind)}: ${n.detail}` }),
          svg("rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6, fill: KINDS[n.kind].color, stroke: "#1b1b1b", "stroke-width": 1 }),
          svg("text", { x: p.x + 8, y: p.y + 14, "font-size": 10, fill: "#1b1b1b", text: small }),
          svg("text", { x: p.x + 8, y: p.y + 28, "font-size": 12, "font-weight": 600, fill: "#1b1b1b", text: label }),
        ),
      );
    }
    columns.forEach((column, ci) => {
      if (column.length > COLUMN_MAX) {
        picture.appendChild(
          svg("text", {
            x: ci * COL_W + 10,
            y: TOP + COLUMN_MAX * (NODE_H + GAP) + 14,
            "font-size": 11,
            text: t(`+${column.length - COLUMN_MAX} more (see the list)`, `另有 ${column.length - COLUMN_MAX} 个（见列表）`),
          }),
        );
      }
    });
    const legend = el(
      "p",
      { class: "legend", "aria-hidden": "true" },
      ["plot", "lot", "event", "location", "shipment"].map((k) =>
        el("span", { style: `--c:${KINDS[k].color}`, text: kindName(k) }),
      ),
    );
    target.replaceChildren(legend, picture);
  }

  function traceList(target, graph) {
    const ordered = [...graph.nodes.values()].sort(
      (a, b) => KINDS[a.kind].column - KINDS[b.kind].column || String(a.time || "").localeCompare(String(b.time || "")),
    );
    const items = ordered.slice(0, LIST_MAX).map((n) => {
      const out = graph.links.filter((l) => l.from === n.id).map((l) => `${edgeName(l.kind)} ${graph.nodes.get(l.to).label}`);
      const into = graph.links.filter((l) => l.to === n.id).map((l) => `${graph.nodes.get(l.from).label} ${edgeName(l.kind)} ${t("this", "此处")}`);
      const anchored =
        n.kind === "event" && n.logIndex !== undefined && n.logIndex !== null
          ? " · " + t(`anchored at log index ${n.logIndex}`, `已记入日志，索引 ${n.logIndex}`)
          : "";
      const item = el(
        "li",
        { tabindex: "0", dataset: { node: n.id } },
        el("strong", { text: `${kindName(n.kind)}: ${n.label}` }),
        ` — ${n.detail}${anchored}`,
        out.length || into.length ? el("br") : null,
        out.length || into.length ? el("small", { text: [...out, ...into].join("; ") }) : null,
      );
      const mark = (on) => {
        const drawnNode = [...document.querySelectorAll("#trace-graph .graph-node")].find((g) => g.dataset.node === n.id);
        if (drawnNode) drawnNode.classList.toggle("focus", on);
      };
      item.addEventListener("focus", () => mark(true));
      item.addEventListener("blur", () => mark(false));
      return item;
    });
    if (ordered.length > LIST_MAX) {
      items.push(el("li", { text: t(`… and ${ordered.length - LIST_MAX} more`, `……另有 ${ordered.length - LIST_MAX} 项`) }));
    }
    target.replaceChildren(...items);
  }

  /** One custody window's chart: the band, the temperature line, excursions shaded. */
  function chart(custody, points) {
    const W = 480;
    const H = 200;
    const PAD = 34;
    const chain = custody.cold_chain || {};
    const band = chain.band ? [chain.band.min_centi_c, chain.band.max_centi_c] : null;
    const first = points.length > 1 && points[0][0] !== points[points.length - 1][0] ? points[0][0] : custody.from_ms;
    const last = points.length > 1 && points[0][0] !== points[points.length - 1][0] ? points[points.length - 1][0] : custody.to_ms;
    const from = Number(first);
    const to = Math.max(Number(last), from + 1);
    let low = Math.min(...points.map((p) => p[1]), band ? band[0] : Infinity, chain.min_centi_c ?? Infinity);
    let high = Math.max(...points.map((p) => p[1]), band ? band[1] : -Infinity, chain.max_centi_c ?? -Infinity);
    if (!Number.isFinite(low) || !Number.isFinite(high)) return null;
    low -= 100;
    high += 100;
    const x = (ms) => PAD + ((ms - from) / (to - from)) * (W - PAD - 5);
    const y = (c) => 5 + ((high - c) / (high - low)) * (H - PAD);
    const picture = svg("svg", {
      class: "chart",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-label": t("Temperature during the shipment, with the product's band", "运输途中的温度及产品温度范围"),
    });
    if (band) {
      picture.appendChild(
        svg("rect", {
          class: "band",
          x: PAD,
          y: y(band[1]).toFixed(1),
          width: W - PAD - 5,
          height: Math.max(0, y(band[0]) - y(band[1])).toFixed(1),
          fill: "#d8eed0",
        }),
      );
      picture.appendChild(svg("text", { x: 2, y: (y(band[1]) + 3).toFixed(1), "font-size": 9, text: centi(band[1]) + "°C" }));
      picture.appendChild(svg("text", { x: 2, y: (y(band[0]) + 3).toFixed(1), "font-size": 9, text: centi(band[0]) + "°C" }));
    }
    for (const e of chain.excursions || []) {
      const start = Math.min(Math.max(Number(e.start_ms), from), to);
      const end = Math.min(Math.max(Number(e.end_ms), start), to);
      picture.appendChild(
        svg(
          "rect",
          {
            class: "excursion",
            x: x(start).toFixed(1),
            y: 5,
            width: Math.max(1, x(end) - x(start)).toFixed(1),
            height: H - PAD,
            fill: "#a4000f",
            "fill-opacity": 0.25,
          },
          svg("title", { text: `${t("Excursion, peak", "温度偏离，峰值")} ${centi(e.peak_centi_c)} °C` }),
        ),
      );
    }
    if (points.length) {
      picture.appendChild(
        svg("polyline", {
          points: points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
          fill: "none",
          stroke: "#0b4f8a",
          "stroke-width": 1.5,
        }),
      );
    }
    picture.appendChild(svg("line", { x1: PAD, y1: H - PAD + 5, x2: W - 5, y2: H - PAD + 5, stroke: "#1b1b1b" }));
    const fine = to - from < 60_000;
    picture.appendChild(svg("text", { x: PAD, y: H - 12, "font-size": 10, text: whenSeconds(from, fine) }));
    picture.appendChild(svg("text", { x: W - 5, y: H - 12, "font-size": 10, "text-anchor": "end", text: whenSeconds(to, fine) }));
    return picture;
  }

  async function coldChain(target, trace) {
    const windows = trace.custody || [];
    if (windows.length === 0) {
      target.replaceChildren(el("p", { text: t("No shipment of this trace has departed yet: no cold chain to show.", "此追溯中尚无已启运的运输：无冷链数据。") }));
      return;
    }
    const blocks = [];
    for (const custody of windows) {
      const chain = custody.cold_chain || {};
      const [owner, id] = String(custody.shipment).replace(/^shipment:/, "").split("/");
      const temps = await api(`/v1/orgs/${enc(owner)}/shipments/${enc(id)}/temperatures`);
      const points = temps.ok ? temps.data.points || [] : [];
      const excursions = chain.excursions || [];
      const facts = [
        `${t("Readings", "读数")}: ${chain.readings || 0}`,
        chain.min_centi_c !== null && chain.min_centi_c !== undefined
          ? `${t("lowest", "最低")} ${centi(chain.min_centi_c)} °C · ${t("highest", "最高")} ${centi(chain.max_centi_c)} °C`
          : null,
        chain.band ? `${t("band", "温度范围")} ${centi(chain.band.min_centi_c)} – ${centi(chain.band.max_centi_c)} °C` : t("the product names no band", "产品未规定温度范围"),
        `${t("Excursions", "温度偏离")}: ${excursions.length}`,
        `${t("outside the band", "超出范围")} ${duration(chain.outside_ms)}`,
      ].filter(Boolean);
      const block = el(
        "div",
        { class: "custody", dataset: { shipment: custody.shipment } },
        el("h3", {
          text: `${shortLabel(custody.shipment)}: ${custody.from_location} → ${custody.to_location || t("(travelling)", "（运输中）")}`,
        }),
        el("p", {
          text: `${when(custody.from_ms)} → ${custody.arrived ? when(custody.to_ms) : t("now", "现在")} · ${facts.join(" · ")}`,
        }),
      );
      const picture = chart(custody, points);
      if (picture) block.appendChild(picture);
      if (!temps.ok) {
        block.appendChild(
          el("p", {
            class: "hint",
            text: t("The temperature line could not be drawn: ", "无法绘制温度曲线：") + explain(temps),
          }),
        );
      }
      if (excursions.length) {
        block.appendChild(
          el(
            "ul",
            {},
            excursions.map((e) =>
              el("li", {
                text:
                  `${e.side === "below" ? t("Below the band", "低于范围") : t("Above the band", "高于范围")} ` +
                  `${whenSeconds(e.start_ms, true)} – ${whenSeconds(e.end_ms, true)}${e.open ? " " + t("(still going on)", "（仍在持续）") : ""}, ` +
                  `${t("peak", "峰值")} ${centi(e.peak_centi_c)} °C, ${t("device", "设备")} ${e.device}`,
              }),
            ),
          ),
        );
      }
      blocks.push(block);
    }
    target.replaceChildren(...blocks);
  }

  /** What a document's signature says, in plain words, and whether it is good. */
  function signatureVerdict(anchor, issuer) {
    const s = (anchor && anchor.signature) || {};
    const who = `${s.org || issuer}${s.signed_by ? " (" + s.signed_by + ")" : ""}`;
    const key = s.key_id ? ` ${t("with key", "密钥")} ${String(s.key_id).slice(0, 16)}…` : "";
    if (s.verifies && s.key_valid === true) {
      return {
        ok: true,
        text: t(`Signed by ${who}${key}: the signature verifies and the key was valid when it signed.`, `由 ${who}${key} 签署：签名有效，签署时密钥有效。`),
      };
    }
    if (s.verifies && (s.key_valid === null || s.key_valid === undefined)) {
      return {
        ok: false,
        text: t(`Signed by ${who}${key}: the signature verifies; whether the key was valid then is not known yet (the log has not caught up).`, `由 ${who}${key} 签署：签名有效；日志尚未更新，暂不能确认签署时密钥是否有效。`),
      };
    }
    if (s.verifies) {
      return { ok: false, text: t(`Signed by ${who}${key}, but the key was NOT valid when it signed (revoked or not yet registered).`, `由 ${who}${key} 签署，但签署时密钥无效（已撤销或尚未登记）。`) };
    }
    return { ok: false, text: t(`The signature of ${who} does NOT verify.`, `${who} 的签名未通过验证。`) };
  }

  async function documents(target, trace) {
    const docs = trace.documents || [];
    if (docs.length === 0) {
      target.replaceChildren(el("p", { text: t("No document of these lots and shipments is shared with you.", "这些批次和运输没有与您共享的单证。") }));
      return;
    }
    const items = [];
    for (const summary of docs) {
      const result = await api(`/v1/documents/${enc(summary.id)}`);
      const heading = el("h3", { text: `${docTypeName(summary.type)} ${summary.number}` });
      if (!result.ok) {
        items.push(el("div", { class: "document" }, heading, el("p", { class: "bad", text: explain(result) })));
        continue;
      }
      const d = result.data;
      const history = d.history || [];
      const head = history.find((a) => a.document === d.id && a.action !== "revoke") || history[0];
      const verdict = head ? signatureVerdict(head, d.issuer) : { ok: false, text: t("Not signed yet: not on the log.", "尚未签署：未记入日志。") };
      const good = verdict.ok && d.status === "valid";
      const block = el(
        "div",
        { class: "document", dataset: { document: d.id } },
        heading,
        el("p", {
          class: "doc-verdict " + (good ? "ok" : "bad"),
          dataset: { verdict: good ? "verified" : "not-verified" },
          text: (good ? t("Verified. ", "已验证。") : t("NOT verified. ", "未通过验证。")) + verdict.text,
        }),
        el(
          "dl",
          {},
          el("dt", { text: t("Issuer", "签发方") }),
          el("dd", { text: d.issuer }),
          el("dt", { text: t("Status", "状态") }),
          el("dd", { class: d.status === "valid" ? "ok" : "bad", text: docStatusName(d.status) }),
          el("dt", { text: t("For", "对应") }),
          el("dd", { text: [d.shipment ? t("shipment ", "运输 ") + d.shipment : null, ...(d.lots || []).map((l) => t("lot ", "批次 ") + l)].filter(Boolean).join(", ") || "—" }),
          el("dt", { text: "SHA-256" }),
          el("dd", {}, el("code", { text: d.sha256 })),
          d.superseded_by ? [el("dt", { text: t("Superseded by", "取代版本") }), el("dd", { text: d.superseded_by })] : null,
        ),
        d.pending ? el("p", { class: "hint", text: t(`A ${d.pending.action} is waiting for the issuer's signature.`, `有一项${d.pending.action}操作待签发方签署。`) }) : null,
        el("p", { text: t("History", "历史") }),
        el(
          "ol",
          { class: "history" },
          history.map((a) =>
            el("li", {
              text:
                `${a.action} · ${when(a.time_ms)} · ` +
                (a.leaf_index !== null && a.leaf_index !== undefined ? t(`log index ${a.leaf_index}`, `日志索引 ${a.leaf_index}`) : t("not yet in the log", "尚未记入日志")) +
                (a.reason ? ` · ${a.reason}` : "") +
                ` · ${signatureVerdict(a, d.issuer).text}`,
            }),
          ),
        ),
      );
      items.push(block);
    }
    target.replaceChildren(...items);
  }

  const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");

  /** Checks a file against the anchored documents and says what it is. */
  async function check(target, file) {
    if (!file) return;
    target.dataset.result = "checking";
    notice(target, "ok", t(`Checking “${file.name}”…`, `正在核验“${file.name}”……`));
    let result;
    let how;
    if (window.crypto && crypto.subtle && file.size <= HASH_BYTES_MAX) {
      const digest = hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
      result = await api("/v1/verify/document", { method: "POST", json: { sha256: digest } });
      how = t("Hashed in this browser; only its SHA-256 was sent.", "已在本浏览器中计算哈希；只发送了 SHA-256。");
    } else {
      const form = new FormData();
      form.append("file", file, file.name);
      result = await api("/v1/verify/document", { method: "POST", body: form });
      how = t("Sent to the node to be hashed (not kept).", "已发送给节点计算哈希（不保存）。");
    }
    if (!result.ok) {
      target.dataset.result = "error";
      notice(target, "bad", explain(result));
      return;
    }
    const answer = result.data;
    const hash = el("p", { class: "hint" }, `SHA-256 `, el("code", { text: answer.sha256 }), ` · ${how}`);
    if (!answer.match) {
      target.dataset.result = "no-match";
      target.replaceChildren(
        el(
          "div",
          { class: "notice bad", role: "alert" },
          el("p", { text: t(`No anchored document matches “${file.name}”.`, `没有已锚定的单证与“${file.name}”相符。`) }),
          el("p", {
            text: t(
              "Nothing recorded on the log has exactly this content: the file may have been changed (one byte is enough), or it was never anchored. Do not rely on it; ask the issuer for the original.",
              "日志中没有内容与之完全相同的记录：文件可能已被改动（改动一个字节即可），或从未锚定。请勿采信，并向签发方索取原件。",
            ),
          }),
          hash,
        ),
      );
      return;
    }
    const found = (answer.documents || []).map((d) => {
      if (!d.readable) {
        return el("p", {
          text: t(
            `It matches a ${docTypeName(d.type)} issued by ${d.issuer} (status: ${docStatusName(d.status)}). It is not shared with your authority, so the node shows nothing more.`,
            `它与 ${d.issuer} 签发的${docTypeName(d.type)}相符（状态：${docStatusName(d.status)}）。该单证未与贵机关共享，节点不显示更多信息。`,
          ),
        });
      }
      const history = d.history || [];
      const head = history.find((a) => a.document === d.id && a.action !== "revoke") || history[0];
      const verdict = head ? signatureVerdict(head, d.issuer) : { ok: false, text: t("Not signed yet.", "尚未签署。") };
      const subject = [d.shipment ? t("shipment ", "运输 ") + d.shipment : null, ...(d.lots || []).map((l) => t("lot ", "批次 ") + l)]
        .filter(Boolean)
        .join(", ");
      const good = verdict.ok && d.status === "valid";
      return el(
        "div",
        { class: "match", dataset: { document: d.id, status: d.status } },
        el("p", {
          class: good ? "ok" : "bad",
          text: t(
            `This is the anchored ${docTypeName(d.type)} ${d.number}, for ${subject || "—"}, issued by ${d.issuer}.`,
            `这是已锚定的${docTypeName(d.type)} ${d.number}，对应 ${subject || "—"}，由 ${d.issuer} 签发。`,
          ),
        }),
        el("p", { text: verdict.text }),
        el("p", { text: t("Status: ", "状态：") + docStatusName(d.status) + (d.superseded_by ? ` (${d.superseded_by})` : "") }),
      );
    });
    target.dataset.result = "match";
    target.replaceChildren(el("div", { class: "notice ok", role: "status" }, ...found, hash));
  }

  function setupCheck() {
    const zone = document.getElementById("drop-zone");
    const input = document.getElementById("check-file");
    const result = document.getElementById("check-result");
    input.addEventListener("change", () => check(result, input.files && input.files[0]));
    for (const name of ["dragenter", "dragover"]) {
      zone.addEventListener(name, (event) => {
        event.preventDefault();
        zone.classList.add("over");
      });
    }
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) check(result, files[0]);
    });
  }

  function setupEvidence(org, id) {
    const button = document.getElementById("export-evidence");
    const target = document.getElementById("evidence-result");
    let url = null;
    button.addEventListener("click", async () => {
      button.disabled = true;
      target.dataset.result = "working";
      notice(target, "ok", t("Building the sealed bundle…", "正在生成密封证据包……"));
      const result = await api(`/v1/orgs/${enc(org)}/shipments/${enc(id)}/evidence`, {
        raw: true,
        accept: "text/plain, application/problem+json",
      });
      button.disabled = false;
      if (result.status === 503) {
        const after = result.headers.get("Retry-After");
        target.dataset.result = "retry";
        notice(
          target,
          "bad",
          t(
            `Not yet: the log's latest checkpoint has not been cosigned by the witnesses the trust policy needs (or the node is building other bundles). A bundle now would not stand up offline. Try again${after ? " in " + after + " seconds" : " shortly"}.`,
            `暂不可导出：日志最新检查点尚未得到信任策略所需见证方的共同签署（或节点正在生成其他证据包），此时导出的证据包无法通过离线核验。请${after ? after + " 秒后" : "稍后"}重试。`,
          ) + (result.problem && result.problem.detail ? " " + result.problem.detail : ""),
        );
        return;
      }
      if (!result.ok) {
        target.dataset.result = "error";
        notice(target, "bad", explain(result));
        return;
      }
      const disposition = result.headers.get("Content-Disposition") || "";
      const named = /filename="([^"]+)"/.exec(disposition);
      const name = named ? named[1] : `shipment-${org}-${id}.evidence.txt`;
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(result.data);
      const link = el("a", { href: url, download: name, text: t(`Save ${name} again`, `再次保存 ${name}`) });
      const pending = Number(result.headers.get("Agritrace-Evidence-Pending") || 0);
      const truncated = result.headers.get("Agritrace-Evidence-Truncated");
      const size = result.headers.get("Agritrace-Evidence-Tree-Size");
      target.dataset.result = "downloaded";
      target.replaceChildren(
        el(
          "div",
          { class: "notice ok", role: "status" },
          el("p", { text: t(`Downloaded ${name} (${result.data.size} bytes).`, `已下载 ${name}（${result.data.size} 字节）。`) }),
          size ? el("p", { text: t(`Its proofs are for the log at tree size ${size}.`, `其证明对应日志树大小 ${size}。`) }) : null,
          pending
            ? el("p", {
                class: "bad",
                text: t(
                  `${pending} records are not yet covered by the log's latest checkpoint and were left out. Export again in a little while to include them.`,
                  `有 ${pending} 条记录尚未被日志最新检查点覆盖，未包含在内。请稍后重新导出。`,
                ),
              })
            : el("p", { text: t("Every record of the trace is in it.", "追溯中的全部记录均已包含。") }),
          truncated
            ? el("p", { class: "bad", text: t(`The bundle was cut short by a limit: ${truncated}.`, `证据包因上限被截短：${truncated}。`) })
            : null,
          el("p", {}, t("Check it offline: ", "离线核验："), el("code", { text: `agritrace-verify evidence ${name}` })),
          el("p", {}, link),
        ),
      );
      link.click();
    });
  }

  async function shipmentView() {
    const org = root.dataset.org;
    const id = root.dataset.id;
    const base = `/v1/orgs/${enc(org)}/shipments/${enc(id)}`;
    setupCheck();
    setupEvidence(org, id);
    const [shipment, trace] = await Promise.all([
      api(base),
      api(`/trace/shipment:${enc(org)}/${enc(id)}?direction=both`),
    ]);
    summary(document.getElementById("summary-body"), shipment);
    const status = document.getElementById("trace-status");
    if (!trace.ok) {
      for (const target of [status, document.getElementById("cold-chain-body"), document.getElementById("documents-body")]) {
        notice(target, "bad", explain(trace));
      }
      return;
    }
    const graph = graphOf(trace.data);
    status.replaceChildren(
      el("p", {
        text:
          t(`${graph.nodes.size} nodes, ${(trace.data.events || []).length} events.`, `${graph.nodes.size} 个节点，${(trace.data.events || []).length} 个事件。`) +
          (trace.data.truncated ? " " + t("The trace was cut short by a limit.", "追溯因上限被截短。") : ""),
      }),
    );
    drawGraph(document.getElementById("trace-graph"), graph);
    traceList(document.getElementById("trace-list"), graph);
    await Promise.all([
      coldChain(document.getElementById("cold-chain-body"), trace.data),
      documents(document.getElementById("documents-body"), trace.data),
    ]);
  }

  (async () => {
    const me = await caller();
    if (!me) return;
    if (root.dataset.view === "shipment") await shipmentView();
    else await listView(me);
    root.dataset.ready = "true";
  })();
})();

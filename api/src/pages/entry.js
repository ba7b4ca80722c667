// The data-entry forms' script: checks every field as the person types (the same rules the
// API applies: GS1 check digits and character set 82, ISO 6346 container check digits,
// WGS84 coordinates and polygon rings, dates, quantities, key lengths), keeps the submit
// button disabled while a field is wrong, then sends what the form says through the JSON API
// with the signed-in caller's token (`window.agritrace.api`). It never writes a record by any
// other way, and never parses data as HTML.
"use strict";
(function () {
  const A = window.agritrace;
  if (!A || !A.token()) return; // The shared script is sending the caller to sign in.
  const { t, api, explain, el, notice, when } = A;
  const who = A.who();
  const org = who && who.org;
  const code = A.lang;
  const $ = (id) => document.getElementById(id);
  const path = (p) => p.replace("{org}", encodeURIComponent(org || ""));

  // ---- Rules (each answers an explanation in plain words, or null when the value is right) ----

  /** The GS1 mod-10 check digit of `digits` (GS1 General Specifications §7.9.1). */
  function gs1CheckDigit(digits) {
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      const digit = digits.charCodeAt(digits.length - 1 - i) - 48;
      sum += digit * (i % 2 === 0 ? 3 : 1);
    }
    return (10 - (sum % 10)) % 10;
  }

  function notDigit(text) {
    const at = [...text].findIndex((c) => c < "0" || c > "9");
    return at < 0
      ? null
      : t(
          `Only the digits 0-9: "${[...text][at]}" at position ${at + 1} is not one.`,
          `只能是数字 0-9：第 ${at + 1} 位的“${[...text][at]}”不是数字。`
        );
  }

  /** A GS1 key with a check digit: lengths allowed, and the digit the others call for. */
  function keyError(text, lengths, what) {
    if (!text) return t(`Enter the ${what}.`, `请输入${what}。`);
    const digit = notDigit(text);
    if (digit) return digit;
    if (!lengths.includes(text.length)) {
      return t(
        `A ${what} has ${lengths.join(", ").replace(/, (\d+)$/, " or $1")} digits; this has ${text.length}.`,
        `${what}应为 ${lengths.join("、")} 位数字；这里有 ${text.length} 位。`
      );
    }
    const body = text.slice(0, -1);
    const expected = gs1CheckDigit(body);
    const found = Number(text[text.length - 1]);
    if (found !== expected) {
      return t(
        `The last digit should be ${expected} for these ${body.length} digits (it is ${found}): check for a mistyped digit.`,
        `按前 ${body.length} 位数字，最后一位（校验位）应为 ${expected}，现为 ${found}：请检查是否输错。`
      );
    }
    return null;
  }
  const gtinError = (text) => keyError(text, [8, 12, 13, 14], "GTIN");
  const gtin14 = (text) => text.padStart(14, "0");

  /** GS1 AI encodable character set 82 (GS1 General Specifications §7.11). */
  const CSET82 = /^[A-Za-z0-9!"%&'()*+,\-./:;<=>?_]$/;
  function lotError(text) {
    if (!text) return t("Enter the lot number.", "请输入批号。");
    const chars = [...text];
    const at = chars.findIndex((c) => !CSET82.test(c));
    if (at >= 0) {
      const shown = chars[at] === " " ? t("a space", "空格") : `"${chars[at]}"`;
      return t(
        `${shown} at position ${at + 1} cannot be in a lot number: use letters, digits and ! " % & ' ( ) * + , - . / : ; < = > ? _ only.`,
        `批号第 ${at + 1} 位的${shown}不允许：只能用字母、数字及 ! " % & ' ( ) * + , - . / : ; < = > ? _。`
      );
    }
    if (chars.length > 20) {
      return t(
        `A lot number has at most 20 characters; this has ${chars.length}.`,
        `批号最多 20 个字符；这里有 ${chars.length} 个。`
      );
    }
    return null;
  }

  /** Organisation, plot, shipment ids: 2 to 63 of a-z, 0-9, inner - . _ */
  function identifierError(text, what) {
    if (!text) return t(`Enter the ${what}.`, `请输入${what}。`);
    if (!/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/.test(text) || text.length < 2 || text.length > 63) {
      return t(
        `"${text}" cannot be a ${what}: use 2 to 63 characters of a-z and 0-9, with - . or _ only between them (no capitals, no spaces).`,
        `“${text}”不能作为${what}：请用 2 至 63 个 a-z、0-9 字符，- . _ 只能在中间（不能有大写字母或空格）。`
      );
    }
    return null;
  }

  function textError(text, what, max = 200) {
    if (!text.trim()) return t(`Enter the ${what}.`, `请输入${what}。`);
    if ([...text].length > max) return t(`At most ${max} characters.`, `最多 ${max} 个字符。`);
    if (/[\u0000-\u001f\u007f]/.test(text)) return t("No control characters.", "不能含控制字符。");
    return null;
  }

  function countryError(text) {
    if (!text) return t("Enter the two-letter country code.", "请输入两位字母的国家代码。");
    return /^[A-Z]{2}$/.test(text)
      ? null
      : t(`"${text}" is not a two-letter country code such as CN or TH.`, `“${text}”不是 CN、TH 这样的两位字母国家代码。`);
  }

  /** A positive decimal quantity; `required` or empty allowed. */
  function quantityError(text, required) {
    if (!text) return required ? t("Enter the quantity.", "请输入数量。") : null;
    const value = Number(text.replace(",", "."));
    if (!Number.isFinite(value) || !/^\s*\d+([.,]\d+)?\s*$/.test(text)) {
      return t(`"${text}" is not a number such as 800 or 12.5.`, `“${text}”不是 800 或 12.5 这样的数字。`);
    }
    if (value <= 0) return t("The quantity must be above 0.", "数量必须大于 0。");
    if (value > 1e12) return t("This quantity is too large.", "数量过大。");
    return null;
  }
  const quantityOf = (text) => Number(text.replace(",", "."));

  function offsetError(text) {
    return /^[+-](0\d|1[0-4]):[0-5]\d$/.test(text)
      ? null
      : t("Write the offset as +08:00 or -05:00.", "时差请写成 +08:00 或 -05:00。");
  }
  function browserOffset() {
    const minutes = -new Date().getTimezoneOffset();
    const abs = Math.abs(minutes);
    return (minutes < 0 ? "-" : "+") + String(Math.floor(abs / 60)).padStart(2, "0") + ":" + String(abs % 60).padStart(2, "0");
  }
  const todayUtc = () => new Date().toISOString().slice(0, 10);
  const localDate = (d) =>
    `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const localTime = (d) => `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;

  /** Unix ms of a local date and time at a UTC offset, or NaN. */
  function instant(date, time, offset) {
    const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
    const h = /^(\d{2}):(\d{2})$/.exec(time);
    const o = /^([+-])(\d{2}):(\d{2})$/.exec(offset);
    if (!d || !h || !o) return NaN;
    const sign = o[1] === "-" ? -1 : 1;
    return (
      Date.UTC(+d[1], +d[2] - 1, +d[3], +h[1], +h[2]) - sign * (Number(o[2]) * 60 + Number(o[3])) * 60_000
    );
  }
  /** EPCIS eventTime: RFC 3339 in UTC. */
  const rfc3339 = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");

  /** A business location: a GLN (made a GS1 Digital Link), an SGLN, or an http(s) URI. */
  function locationOf(text) {
    if (/^\d+$/.test(text)) {
      const error = keyError(text, [13], "GLN");
      return error ? { error } : { uri: "https://id.gs1.org/414/" + text };
    }
    if (text.startsWith("urn:epc:id:sgln:")) {
      const parts = text.slice(16).split(".");
      const ok =
        parts.length === 3 &&
        /^\d+$/.test(parts[0]) &&
        /^\d*$/.test(parts[1]) &&
        parts[0].length + parts[1].length === 12 &&
        parts[2].length > 0 &&
        !/\s/.test(parts[2]);
      return ok
        ? { uri: text }
        : {
            error: t(
              "An SGLN is urn:epc:id:sgln: then company prefix, location reference (12 digits together) and extension, separated by dots.",
              "SGLN 的格式为 urn:epc:id:sgln: 后接厂商识别代码、位置参考（合计 12 位数字）和扩展码，以点分隔。"
            ),
          };
    }
    if (/^https?:\/\/\S+$/.test(text)) {
      try {
        new URL(text);
        return { uri: text };
      } catch (_) {
        /* falls through to the error */
      }
    }
    if (!text) return { error: t("Enter where it happened.", "请输入事件发生地点。") };
    return {
      error: t(
        "Give a GLN (13 digits), an SGLN (urn:epc:id:sgln:…) or an https:// address.",
        "请给出 GLN（13 位数字）、SGLN（urn:epc:id:sgln:…）或 https:// 地址。"
      ),
    };
  }

  /** ISO 6346 character values: A = 10 upwards, skipping 11, 22 and 33. */
  function iso6346Value(c) {
    if (c >= "0" && c <= "9") return c.charCodeAt(0) - 48;
    let value = 10 + c.charCodeAt(0) - 65;
    value += Math.floor((value - 1) / 10);
    return value;
  }
  /** What is wrong with one ISO 6346 container number, or null. */
  function containerError(text) {
    if (!/^[A-Z]{3}[UJZ]\d{7}$/.test(text)) {
      return t(
        `"${text}" is not an ISO 6346 number: 3 letters of the owner code, U, J or Z, 6 digits and the check digit (11 characters).`,
        `“${text}”不是 ISO 6346 箱号：3 个箱主代码字母、U/J/Z、6 位数字和校验位（共 11 个字符）。`
      );
    }
    let sum = 0;
    for (let i = 0; i < 10; i++) sum += iso6346Value(text[i]) * 2 ** i;
    const expected = (sum % 11) % 10;
    const found = Number(text[10]);
    return found === expected
      ? null
      : t(
          `${text}: the check digit should be ${expected}, not ${found}. Check the number against the container's door.`,
          `${text}：校验位应为 ${expected}，而不是 ${found}。请对照箱门上的箱号核对。`
        );
  }

  /** Percent-encodes a Digital Link path value (GS1 Digital Link 1.2: all but unreserved). */
  const dlEncode = (text) =>
    Array.from(new TextEncoder().encode(text), (b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9\-._~]/.test(c) ? c : "%" + b.toString(16).toUpperCase().padStart(2, "0");
    }).join("");
  const lotPage = (gtin, lot) => `/01/${gtin}/10/${dlEncode(lot)}?lang=${code}`;

  // ---- Geometry (mirrors the node's `geo` rules: WGS84, six decimals, one closed ring) ----

  const POLYGON_CORNERS_MAX = 5000;
  const AUTHALIC_RADIUS_M = 6371007.2;
  const micro = (degrees) => Math.round(degrees * 1e6);

  /** Reads pasted coordinates: {corners: [[lonE6, latE6]...] (ring without its repeat), point, error}. */
  function readCoordinates(text, order) {
    const trimmed = text.trim();
    if (!trimmed) return { error: t("Paste or draw the plot's coordinates.", "请粘贴或绘制地块坐标。") };
    let positions = [];
    let closed = false;
    const checkRange = (lon, lat, where) => {
      if (!Number.isFinite(lon) || lon < -180 || lon > 180) {
        return t(`${where}: longitude ${lon} is not between -180 and 180.`, `${where}：经度 ${lon} 不在 -180 到 180 之间。`);
      }
      if (!Number.isFinite(lat) || lat < -90 || lat > 90) {
        return t(
          `${where}: latitude ${lat} is not between -90 and 90. Are latitude and longitude the other way round?`,
          `${where}：纬度 ${lat} 不在 -90 到 90 之间。经纬度是否写反了？`
        );
      }
      return null;
    };
    if (order === "geojson") {
      let value;
      try {
        value = JSON.parse(trimmed);
      } catch (_) {
        return { error: t("This is not JSON. Choose the kind of lines you pasted, or paste GeoJSON.", "这不是 JSON。请选择所粘贴的行格式，或粘贴 GeoJSON。") };
      }
      if (value && value.type === "Feature") value = value.geometry;
      if (!value || (value.type !== "Polygon" && value.type !== "Point")) {
        return { error: t("A plot is a GeoJSON Polygon or Point.", "地块须为 GeoJSON 的 Polygon 或 Point。") };
      }
      if (value.type === "Point") {
        const c = value.coordinates;
        if (!Array.isArray(c) || c.length < 2) return { error: t("A Point is [longitude, latitude].", "Point 的格式为 [经度, 纬度]。") };
        const error = checkRange(Number(c[0]), Number(c[1]), t("The point", "该点"));
        return error ? { error } : { point: [micro(c[0]), micro(c[1])] };
      }
      const rings = value.coordinates;
      if (!Array.isArray(rings) || rings.length !== 1 || !Array.isArray(rings[0])) {
        return { error: t("Give one outer ring, without holes.", "请只给出一个外环，不要有洞。") };
      }
      for (const [i, p] of rings[0].entries()) {
        if (!Array.isArray(p) || typeof p[0] !== "number" || typeof p[1] !== "number") {
          return { error: t(`Position ${i + 1} is not [longitude, latitude].`, `第 ${i + 1} 个位置不是 [经度, 纬度]。`) };
        }
        const error = checkRange(p[0], p[1], t(`Position ${i + 1}`, `第 ${i + 1} 个位置`));
        if (error) return { error };
        positions.push([micro(p[0]), micro(p[1])]);
      }
      const first = positions[0];
      const last = positions[positions.length - 1];
      if (positions.length < 2 || first[0] !== last[0] || first[1] !== last[1]) {
        return {
          error: t(
            "The ring is not closed: in GeoJSON its last position must repeat its first.",
            "环未闭合：GeoJSON 中最后一个位置必须与第一个相同。"
          ),
          corners: positions,
        };
      }
      closed = true;
    } else {
      const lines = trimmed.split(/\r?\n/).map((l) => l.trim()).filter((l) => l);
      for (const [i, line] of lines.entries()) {
        const numbers = line.split(/[\s,;]+/).filter((p) => p);
        const where = t(`Line ${i + 1}`, `第 ${i + 1} 行`);
        if (numbers.length !== 2 || numbers.some((n) => !/^[+-]?\d+(\.\d+)?$/.test(n))) {
          return {
            error: t(
              `${where} "${line}" is not two decimal numbers such as 21.4702, 101.5631.`,
              `${where}“${line}”不是 21.4702, 101.5631 这样的两个十进制数。`
            ),
          };
        }
        const [a, b] = numbers.map(Number);
        const [lon, lat] = order === "lonlat" ? [a, b] : [b, a];
        const error = checkRange(lon, lat, where);
        if (error) return { error };
        positions.push([micro(lon), micro(lat)]);
      }
      if (positions.length === 1) return { point: positions[0] };
      const first = positions[0];
      const last = positions[positions.length - 1];
      closed = positions.length > 1 && first[0] === last[0] && first[1] === last[1];
    }
    const corners = closed ? positions.slice(0, -1) : positions;
    return polygonOf(corners);
  }

  /** Whether segments p1-p2 and p3-p4 meet (touching included), exactly in microdegrees. */
  function segmentsMeet(p1, p2, p3, p4) {
    const orient = (a, b, c) => Math.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]));
    const on = (a, b, c) =>
      c[0] >= Math.min(a[0], b[0]) && c[0] <= Math.max(a[0], b[0]) && c[1] >= Math.min(a[1], b[1]) && c[1] <= Math.max(a[1], b[1]);
    const [d1, d2, d3, d4] = [orient(p3, p4, p1), orient(p3, p4, p2), orient(p1, p2, p3), orient(p1, p2, p4)];
    if (d1 * d2 < 0 && d3 * d4 < 0) return true;
    return (d1 === 0 && on(p3, p4, p1)) || (d2 === 0 && on(p3, p4, p2)) || (d3 === 0 && on(p1, p2, p3)) || (d4 === 0 && on(p1, p2, p4));
  }

  function areaM2(corners) {
    const rad = (e6) => (e6 * 1e-6 * Math.PI) / 180;
    let sum = 0;
    for (let i = 0; i < corners.length; i++) {
      const [lon1, lat1] = corners[i].map(rad);
      const [lon2, lat2] = corners[(i + 1) % corners.length].map(rad);
      let dlon = lon2 - lon1;
      if (dlon > Math.PI) dlon -= 2 * Math.PI;
      else if (dlon < -Math.PI) dlon += 2 * Math.PI;
      sum += dlon * (2 + Math.sin(lat1) + Math.sin(lat2));
    }
    return Math.abs((sum * AUTHALIC_RADIUS_M * AUTHALIC_RADIUS_M) / 2);
  }

  function polygonOf(corners) {
    const n = corners.length;
    const distinct = new Set(corners.map((c) => c.join(","))).size;
    if (distinct < 3) {
      return {
        error: t(
          `A polygon needs at least 3 different corners; this has ${distinct}.`,
          `多边形至少需要 3 个不同的角点；这里只有 ${distinct} 个。`
        ),
        corners,
      };
    }
    if (n > POLYGON_CORNERS_MAX) return { error: t(`At most ${POLYGON_CORNERS_MAX} corners.`, `最多 ${POLYGON_CORNERS_MAX} 个角点。`) };
    for (let i = 0; i < n; i++) {
      const [a, b] = [corners[i], corners[(i + 1) % n]];
      if (a[0] === b[0] && a[1] === b[1]) {
        return { error: t(`Corner ${((i + 1) % n) + 1} repeats the corner before it.`, `第 ${((i + 1) % n) + 1} 个角点与前一个重复。`), corners };
      }
    }
    for (let i = 0; i < n; i++) {
      for (let j = i + 2; j < n; j++) {
        if (i === 0 && j === n - 1) continue;
        if (segmentsMeet(corners[i], corners[(i + 1) % n], corners[j], corners[(j + 1) % n])) {
          return {
            error: t(
              `The outline crosses itself (edge ${i + 1} and edge ${j + 1}): give the corners in order around the plot.`,
              `边界自相交（第 ${i + 1} 条边与第 ${j + 1} 条边）：请沿地块依次给出角点。`
            ),
            corners,
          };
        }
      }
    }
    const area = areaM2(corners);
    if (area <= 0) return { error: t("The corners enclose no area.", "这些角点围不出面积。"), corners };
    return { corners, area };
  }

  const degrees = (e6) => Number((e6 / 1e6).toFixed(6));
  function geojsonOf(shape) {
    if (shape.point) return { type: "Point", coordinates: shape.point.map(degrees) };
    const ring = shape.corners.map((c) => c.map(degrees));
    ring.push(ring[0]);
    return { type: "Polygon", coordinates: [ring] };
  }

  /** Draws corners (or a point) into an SVG, longitude scaled by cos(latitude). */
  function drawShape(svg, shape, bad) {
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    const corners = shape.point ? [shape.point] : shape.corners || [];
    if (!corners.length) return;
    const k = Math.cos((corners[0][1] * 1e-6 * Math.PI) / 180);
    const xs = corners.map((c) => c[0] * k);
    const ys = corners.map((c) => -c[1]);
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const span = Math.max(maxX - minX, maxY - minY, 1e-9);
    const at = (i) => [10 + ((xs[i] - minX) * 180) / span, 10 + ((ys[i] - minY) * 180) / span];
    const node = (tag, attrs) => {
      const n = document.createElementNS(NS, tag);
      for (const [key, value] of Object.entries(attrs)) n.setAttribute(key, String(value));
      svg.appendChild(n);
      return n;
    };
    if (corners.length === 1) {
      node("circle", { cx: 100, cy: 100, r: 8, fill: "#1e5631" });
      return;
    }
    const points = corners.map((_, i) => at(i).map((v) => v.toFixed(1)).join(",")).join(" ");
    node(corners.length >= 3 ? "polygon" : "polyline", {
      points,
      fill: bad ? "#f6c6cb" : "#7fb069",
      stroke: bad ? "#a4000f" : "#1e5631",
      "stroke-width": 2,
    });
  }

  // ---- Form machinery ----

  /** Marks one field right or wrong, with its explanation next to it. */
  function mark(id, message) {
    const control = $(id) || $(id + "-field");
    const line = $(id + "-error");
    if (control) {
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
    if (line) line.textContent = message || "";
  }
  function labelOf(id) {
    const label = document.querySelector(`label[for="${id}"]`) || ($(id + "-field") && $(id + "-field").querySelector("legend"));
    return label ? label.textContent.trim() : id;
  }

  /**
   * Wires a form: `checks` is a list of {id, check} (check() answers an explanation or null);
   * fields are checked on every input, and errors shown once a field was touched (all of them
   * on a submit). The submit button stays disabled while any check fails or a submit runs;
   * `send` runs only when every check passes.
   */
  function wire(form, checks, send) {
    const submit = $("submit");
    const why = $("submit-why");
    const touched = new Set();
    let busy = false;
    const validate = (all) => {
      const wrong = [];
      for (const c of checks) {
        const message = c.check();
        if (message) wrong.push(c.id);
        if (all || touched.has(c.id)) mark(c.id, message);
      }
      submit.disabled = busy || wrong.length > 0;
      why.textContent = wrong.length
        ? t("Still to complete or correct: ", "尚需填写或更正：") + wrong.map(labelOf).join(t(", ", "、"))
        : "";
      return wrong;
    };
    const touch = (event) => {
      const target = event.target;
      const owner = checks.find((c) => c.id === target.id || (target.name && c.id === target.name) || (c.members && c.members(target)));
      if (owner) touched.add(owner.id);
      validate(false);
    };
    form.addEventListener("input", touch);
    form.addEventListener("change", touch);
    form.addEventListener("focusout", touch);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const wrong = validate(true);
      if (wrong.length) {
        const first = $(wrong[0]) || $(wrong[0] + "-field");
        if (first) first.focus();
        return;
      }
      if (busy) return;
      busy = true;
      submit.disabled = true;
      try {
        await send();
      } finally {
        busy = false;
        validate(false);
      }
    });
    return { validate, touch: (id) => touched.add(id) };
  }

  /** The outcome of a submit, with `data-state` for whoever watches (people see the words). */
  function result(state, kind, text, ...extra) {
    const box = $("result");
    notice(box, kind, text);
    box.firstChild.append(...extra);
    box.dataset.state = state;
    box.scrollIntoView({ block: "nearest" });
  }

  /** Up to `max` records of an organisation's list, following `next`. */
  async function listAll(route, key, max = 500) {
    const items = [];
    let next = null;
    do {
      const query = `?limit=${Math.min(100, max - items.length)}` + (next ? "&next=" + encodeURIComponent(next) : "");
      const answer = await api(path(route) + query);
      if (!answer.ok) return { items, error: explain(answer) };
      items.push(...(answer.data[key] || []));
      next = answer.data.next;
    } while (next && items.length < max);
    return { items, more: Boolean(next) };
  }

  function fillSelect(select, placeholder, options) {
    select.replaceChildren(el("option", { value: "", text: placeholder }), ...options.map(([value, label]) => el("option", { value, text: label })));
  }

  async function fillSuggestions() {
    const products = await listAll("/v1/orgs/{org}/products", "products", 200);
    const gtins = $("gtin-list");
    if (gtins) gtins.replaceChildren(...products.items.map((p) => el("option", { value: p.gtin, label: `${p.name_en} · ${p.name_zh}` })));
    const locations = await listAll("/v1/orgs/{org}/locations", "locations", 200);
    const places = $("location-list");
    if (places) places.replaceChildren(...locations.items.filter((l) => l.gln).map((l) => el("option", { value: l.gln, label: l.name })));
  }

  // ---- EPCIS capture ----

  const CAPTURE_PATIENCE_MS = 60_000;
  const POLL_MS = 500;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Captures one event and waits for its job: {ok, job, why}. */
  async function captureOne(event) {
    const document = {
      "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
      type: "EPCISDocument",
      schemaVersion: "2.0",
      creationDate: rfc3339(Date.now()),
      epcisBody: { eventList: [event] },
    };
    const answer = await api("/epcis/capture", { method: "POST", json: document });
    if (!answer.ok) return { ok: false, why: explain(answer) };
    const id = answer.data && answer.data.captureID;
    const started = Date.now();
    for (;;) {
      const job = await api("/epcis/capture/" + encodeURIComponent(id));
      if (job.ok && job.data.running === false) {
        if (job.data.success) return { ok: true, job: job.data };
        const errors = (job.data.errors || []).map((e) => e.detail).join("; ");
        return { ok: false, why: t("The node could not record the event: ", "节点未能记录该事件：") + errors };
      }
      if (!job.ok && job.status !== 404) return { ok: false, why: explain(job) };
      if (Date.now() - started > CAPTURE_PATIENCE_MS) {
        return { ok: false, pending: true, why: t("The node is still recording the event.", "节点仍在记录该事件。") };
      }
      await sleep(POLL_MS);
    }
  }

  function eventFields() {
    return {
      time: instant($("date").value, $("time").value, $("offset").value.trim()),
      offset: $("offset").value.trim(),
      location: locationOf($("location").value.trim()).uri,
    };
  }

  function whenChecks(harvest) {
    return [
      {
        id: "date",
        check: () => {
          const value = $("date").value;
          if (!value) return t("Enter the date.", "请输入日期。");
          if (harvest && value > todayUtc()) {
            return t(`${value} is after today (${todayUtc()} UTC): a harvest cannot be recorded ahead.`, `${value} 晚于今天（UTC ${todayUtc()}）：不能预先记录采收。`);
          }
          return null;
        },
      },
      {
        id: "time",
        check: () => {
          if (!$("time").value) return t("Enter the time.", "请输入时间。");
          const at = instant($("date").value, $("time").value, $("offset").value.trim());
          if (Number.isFinite(at) && at > Date.now() + 5 * 60_000) {
            return t(`This is in the future (${when(at)}).`, `这是将来的时间（${when(at)}）。`);
          }
          return null;
        },
      },
      { id: "offset", check: () => offsetError($("offset").value.trim()) },
      { id: "location", check: () => locationOf($("location").value.trim()).error || null },
    ];
  }

  function prefillWhen() {
    const now = new Date(Date.now() - 60_000);
    $("date").value = localDate(now) > todayUtc() ? todayUtc() : localDate(now);
    $("time").value = localTime(now);
    $("offset").value = browserOffset();
  }

  /** A recorded event's words: its log index, and the lot's consumer page. */
  function recordedLinks(gtin, lot) {
    return [" ", el("a", { href: lotPage(gtin, lot), id: "lot-page", text: t("Open the lot's consumer page", "打开该批次的消费者页面") })];
  }

  // ---- The forms ----

  function plotForm(form) {
    let shape = {};
    const mode = () => form.querySelector("input[name=mode]:checked").value;
    const preview = $("plot-preview");
    const areaOut = $("plot-area");
    const canvas = $("draw-canvas");
    const drawn = [];
    const GRID_PX = 300;
    const METRES_PER_PX = 1;
    const refresh = () => {
      shape = readCoordinates($("coords").value, $("order").value);
      drawShape(preview, shape, Boolean(shape.error));
      if (shape.area) {
        const ha = shape.area / 10_000;
        areaOut.textContent = `${ha.toFixed(ha < 10 ? 3 : 1)} ha (${Math.round(shape.area).toLocaleString()} m²)`;
      } else if (shape.point) {
        areaOut.textContent = t("a point: give its area below", "一个点：请在上方填写面积");
      } else {
        areaOut.textContent = "—";
      }
      $("area-field").hidden = !shape.point;
    };
    const centre = () => {
      const m = /^\s*([+-]?\d+(?:\.\d+)?)\s*[,\s]\s*([+-]?\d+(?:\.\d+)?)\s*$/.exec($("centre").value);
      if (!m) return null;
      const [lat, lon] = [Number(m[1]), Number(m[2])];
      return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 ? { lat, lon } : null;
    };
    const drawGrid = () => {
      const NS = "http://www.w3.org/2000/svg";
      canvas.replaceChildren();
      const line = (x1, y1, x2, y2, heavy) => {
        const n = document.createElementNS(NS, "line");
        for (const [k, v] of Object.entries({ x1, y1, x2, y2, stroke: heavy ? "#6b6b63" : "#c9d3bd", "stroke-width": heavy ? 1 : 0.5 })) n.setAttribute(k, v);
        canvas.appendChild(n);
      };
      for (let i = 0; i <= GRID_PX; i += 20) {
        line(i, 0, i, GRID_PX, i === GRID_PX / 2);
        line(0, i, GRID_PX, i, i === GRID_PX / 2);
      }
      if (drawn.length) {
        const poly = document.createElementNS(NS, drawn.length >= 3 ? "polygon" : "polyline");
        poly.setAttribute("points", drawn.map((p) => p.join(",")).join(" "));
        poly.setAttribute("fill", "rgba(127,176,105,.5)");
        poly.setAttribute("stroke", "#1e5631");
        poly.setAttribute("stroke-width", "2");
        canvas.appendChild(poly);
        for (const [x, y] of drawn) {
          const dot = document.createElementNS(NS, "circle");
          dot.setAttribute("cx", x);
          dot.setAttribute("cy", y);
          dot.setAttribute("r", 4);
          dot.setAttribute("fill", "#1e5631");
          canvas.appendChild(dot);
        }
      }
      $("draw-status").textContent = centre()
        ? t(`${drawn.length} corner(s); each square is 20 m.`, `已有 ${drawn.length} 个角点；每格 20 米。`)
        : t("Type the centre first (latitude, longitude).", "请先输入中心（纬度, 经度）。");
    };
    /** The drawn corners become "latitude, longitude" lines: one way of typing them. */
    const drawnToText = () => {
      const c = centre();
      if (!c) return;
      const k = Math.cos((c.lat * Math.PI) / 180) || 1e-9;
      $("order").value = "latlon";
      $("coords").value = drawn
        .map(([x, y]) => {
          const lat = c.lat - ((y - GRID_PX / 2) * METRES_PER_PX) / 110_574;
          const lon = c.lon + ((x - GRID_PX / 2) * METRES_PER_PX) / (111_320 * k);
          return `${lat.toFixed(6)}, ${lon.toFixed(6)}`;
        })
        .join("\n");
      controls.touch("coords");
      refresh();
      controls.validate(false);
    };
    canvas.addEventListener("click", (event) => {
      if (!centre()) {
        $("draw-status").textContent = t("Type the centre first (latitude, longitude).", "请先输入中心（纬度, 经度）。");
        return;
      }
      const box = canvas.getBoundingClientRect();
      const x = Math.round(((event.clientX - box.left) / box.width) * GRID_PX);
      const y = Math.round(((event.clientY - box.top) / box.height) * GRID_PX);
      drawn.push([x, y]);
      drawGrid();
      drawnToText();
    });
    $("draw-undo").addEventListener("click", () => {
      drawn.pop();
      drawGrid();
      drawnToText();
    });
    $("draw-clear").addEventListener("click", () => {
      drawn.length = 0;
      drawGrid();
      drawnToText();
    });
    $("centre").addEventListener("input", () => {
      drawGrid();
      if (drawn.length) drawnToText();
    });
    for (const radio of form.querySelectorAll("input[name=mode]")) {
      radio.addEventListener("change", () => {
        $("paste-panel").hidden = mode() !== "paste";
        $("draw-panel").hidden = mode() !== "draw";
        drawGrid();
      });
    }
    $("country").addEventListener("input", () => ($("country").value = $("country").value.toUpperCase()));
    $("coords").addEventListener("input", refresh);
    $("order").addEventListener("change", refresh);
    const controls = wire(
      form,
      [
        { id: "plot-id", check: () => identifierError($("plot-id").value, t("plot id", "地块编号")) },
        { id: "plot-name", check: () => textError($("plot-name").value, t("plot's name", "地块名称")) },
        { id: "country", check: () => countryError($("country").value) },
        { id: "coords", check: () => shape.error || null },
        {
          id: "area",
          check: () => {
            if (!shape.point) return null;
            const error = quantityError($("area").value.trim(), true);
            if (error) return error;
            return quantityOf($("area").value) > 4
              ? t("A plot over 4 ha must be given by its outline (a polygon), not a point.", "大于 4 公顷的地块须给出边界（多边形），不能用点。")
              : null;
          },
        },
      ],
      async () => {
        const id = $("plot-id").value;
        const body = { id, name: $("plot-name").value.trim(), country: $("country").value, geometry: geojsonOf(shape) };
        if (shape.point) body.area_ha = quantityOf($("area").value);
        const answer = await api(path("/v1/orgs/{org}/plots"), { method: "POST", json: body });
        if (!answer.ok) return result("refused", "bad", t("The plot was not registered. ", "地块未登记。") + explain(answer));
        result(
          "created",
          "ok",
          t(`Plot ${id} registered: ${answer.data.area_ha.toFixed(3)} ha.`, `地块 ${id} 已登记：${answer.data.area_ha.toFixed(3)} 公顷。`),
          " ",
          el("a", { href: `/entry/harvest?lang=${code}&plot=${encodeURIComponent(id)}`, text: t("Record a harvest on it", "记录该地块的采收") })
        );
      }
    );
    refresh();
    drawGrid();
    controls.validate(false);
  }

  async function harvestForm(form) {
    /** The lot created by a submit whose event was not recorded (a new submit records the event only). */
    let pendingEvent = null;
    prefillWhen();
    const wanted = new URLSearchParams(location.search).get("plot");
    const controls = wire(
      form,
      [
        { id: "gtin", check: () => gtinError($("gtin").value.trim()) },
        { id: "lot", check: () => lotError($("lot").value) },
        { id: "plot", check: () => ($("plot").value ? null : t("Choose the plot.", "请选择地块。")) },
        { id: "quantity", check: () => quantityError($("quantity").value.trim(), true) },
        ...whenChecks(true),
      ],
      () => recordHarvest()
    );
    controls.validate(false);
    const plots = await listAll("/v1/orgs/{org}/plots", "plots");
    fillSelect(
      $("plot"),
      plots.items.length ? t("Choose a plot…", "请选择地块…") : t("No plots yet: register one first", "尚无地块：请先登记"),
      plots.items.map((p) => [p.id, `${p.name} (${p.id}, ${p.country}, ${Number(p.area_ha).toFixed(2)} ha)`])
    );
    if (plots.error) mark("plot", plots.error);
    if (wanted && plots.items.some((p) => p.id === wanted)) $("plot").value = wanted;
    controls.validate(false);
    fillSuggestions();

    async function recordHarvest() {
      const gtin = gtin14($("gtin").value.trim());
      const lot = $("lot").value;
      const amount = quantityOf($("quantity").value.trim());
      const { time, offset, location: place } = eventFields();
      const event = {
        type: "ObjectEvent",
        action: "ADD",
        bizStep: "commissioning",
        disposition: "active",
        eventTime: rfc3339(time),
        eventTimeZoneOffset: offset,
        quantityList: [{ epcClass: `https://id.gs1.org/01/${gtin}/10/${dlEncode(lot)}`, quantity: amount, uom: "KGM" }],
        bizLocation: { id: place },
      };
      const same = pendingEvent && pendingEvent.gtin === gtin && pendingEvent.lot === lot;
      if (!same) {
        const body = {
          gtin,
          lot,
          plot: $("plot").value,
          harvest_date: $("date").value,
          quantity: { amount, unit: "KGM" },
        };
        const answer = await api(path("/v1/orgs/{org}/lots"), { method: "POST", json: body });
        if (!answer.ok) {
          return result("refused", "bad", t("Nothing was recorded: the lot was refused. ", "未记录任何内容：批次被拒绝。") + explain(answer));
        }
      }
      pendingEvent = { gtin, lot };
      result("capturing", "ok", t(`Lot ${lot} created; recording its harvest event in the log…`, `批次 ${lot} 已创建；正在把采收事件记入日志…`));
      const outcome = await captureOne(event);
      if (outcome.ok) {
        pendingEvent = null;
        const index = outcome.job.events && outcome.job.events[0] && outcome.job.events[0].logIndex;
        return result(
          "recorded",
          "ok",
          index === null || index === undefined
            ? t(`Recorded: lot ${lot} and its harvest event.`, `已记录：批次 ${lot} 及其采收事件。`)
            : t(`Recorded: lot ${lot} and its harvest event, at index ${index} of the log.`, `已记录：批次 ${lot} 及其采收事件，位于日志第 ${index} 条。`),
          ...recordedLinks(gtin, lot)
        );
      }
      result(
        outcome.pending ? "pending" : "partial",
        "bad",
        t(
          `The lot ${lot} exists now, but its harvest event was not recorded: ${outcome.why} Nothing else was changed. Submit again to record the event only (the lot is not created twice).`,
          `批次 ${lot} 已存在，但其采收事件未被记录：${outcome.why} 其他内容均未改变。再次提交只会记录该事件（不会重复创建批次）。`
        )
      );
    }
  }

  async function packingForm(form) {
    prefillWhen();
    const controls = wire(
      form,
      [
        { id: "lot-choice", check: () => ($("lot-choice").value ? null : t("Choose the lot.", "请选择批次。")) },
        { id: "quantity", check: () => quantityError($("quantity").value.trim(), false) },
        ...whenChecks(false),
      ],
      async () => {
        const choice = $("lot-choice").value;
        const cut = choice.indexOf("/");
        const [gtin, lot] = [choice.slice(0, cut), choice.slice(cut + 1)];
        const { time, offset, location: place } = eventFields();
        const quantity = $("quantity").value.trim();
        const item = { epcClass: `https://id.gs1.org/01/${gtin}/10/${dlEncode(lot)}` };
        if (quantity) Object.assign(item, { quantity: quantityOf(quantity), uom: "KGM" });
        const outcome = await captureOne({
          type: "ObjectEvent",
          action: "OBSERVE",
          bizStep: "packing",
          eventTime: rfc3339(time),
          eventTimeZoneOffset: offset,
          quantityList: [item],
          bizLocation: { id: place },
        });
        if (!outcome.ok) {
          return result(outcome.pending ? "pending" : "refused", "bad", t("The packing event was not recorded. ", "包装事件未被记录。") + outcome.why);
        }
        const index = outcome.job.events && outcome.job.events[0] && outcome.job.events[0].logIndex;
        result(
          "recorded",
          "ok",
          t(`Recorded: lot ${lot} packed, at index ${index} of the log.`, `已记录：批次 ${lot} 已包装，位于日志第 ${index} 条。`),
          ...recordedLinks(gtin, lot)
        );
      }
    );
    const lots = await listAll("/v1/orgs/{org}/lots", "lots");
    fillSelect(
      $("lot-choice"),
      lots.items.length ? t("Choose a lot…", "请选择批次…") : t("No lots yet: record a harvest first", "尚无批次：请先记录采收"),
      lots.items.map((l) => [`${l.gtin}/${l.lot}`, `${l.gtin} / ${l.lot} (${l.harvest_date})`])
    );
    if (lots.error) mark("lot-choice", lots.error);
    controls.validate(false);
    fillSuggestions();
  }

  /** Checkboxes of a list, into `box`; the values checked. */
  function checkboxes(box, name, items, empty) {
    box.replaceChildren(
      ...(items.length
        ? items.map(([value, label], i) =>
            el("label", { class: "choice" }, el("input", { type: "checkbox", name, value, id: `${name}-${i}` }), " ", label)
          )
        : [el("p", { class: "hint", text: empty })])
    );
  }
  const checked = (name) => [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);

  async function shipmentForm(form) {
    const lines = (id) => $(id).value.split(/[\r\n]+/).map((l) => l.trim().toUpperCase()).filter((l) => l);
    const list = (id) => $(id).value.split(",").map((s) => s.trim()).filter((s) => s);
    for (const id of ["consignee-country", "origin-country", "destination-country"]) {
      $(id).addEventListener("input", () => ($(id).value = $(id).value.toUpperCase()));
    }
    const controls = wire(
      form,
      [
        { id: "shipment-id", check: () => identifierError($("shipment-id").value, t("shipment id", "货运编号")) },
        { id: "consignee-name", check: () => textError($("consignee-name").value, t("consignee", "收货人")) },
        { id: "consignee-country", check: () => countryError($("consignee-country").value) },
        { id: "origin-country", check: () => countryError($("origin-country").value) },
        { id: "destination-country", check: () => countryError($("destination-country").value) },
        {
          id: "declared-to",
          check: () => {
            const ids = list("declared-to");
            if (ids.length > 16) return t("At most 16 authorities.", "最多 16 个海关。");
            if (new Set(ids).size !== ids.length) return t("An authority is named twice.", "有海关被重复列出。");
            for (const id of ids) {
              const error = identifierError(id, t("organisation id", "组织编号"));
              if (error) return error;
            }
            return null;
          },
        },
        {
          id: "containers",
          check: () => {
            const numbers = lines("containers");
            if (numbers.length > 1000) return t("At most 1000 containers.", "最多 1000 个集装箱。");
            for (const [i, number] of numbers.entries()) {
              const error = containerError(number);
              if (error) return numbers.length > 1 ? t(`Line ${i + 1}: `, `第 ${i + 1} 行：`) + error : error;
              if (numbers.indexOf(number) !== i) return t(`${number} is named twice.`, `${number} 被重复列出。`);
            }
            return null;
          },
        },
        { id: "departure-place", check: () => textError($("departure-place").value, t("place of departure", "起运地点")) },
        {
          id: "departure-time",
          check: () => (Number.isFinite(new Date($("departure-time").value).getTime()) ? null : t("Enter the date and time.", "请输入日期和时间。")),
        },
      ],
      async () => {
        const id = $("shipment-id").value;
        const body = {
          id,
          consignee: { name: $("consignee-name").value.trim(), country: $("consignee-country").value },
          origin_country: $("origin-country").value,
          destination_country: $("destination-country").value,
          declared_to: list("declared-to"),
          containers: lines("containers"),
          lots: checked("lot").map((v) => {
            const cut = v.indexOf("/");
            return { gtin: v.slice(0, cut), lot: v.slice(cut + 1) };
          }),
          devices: checked("device"),
          planned_departure: { location: $("departure-place").value.trim(), time_ms: new Date($("departure-time").value).getTime() },
        };
        const answer = await api(path("/v1/orgs/{org}/shipments"), { method: "POST", json: body });
        if (!answer.ok) return result("refused", "bad", t("The shipment was not created. ", "货运未创建。") + explain(answer));
        result("created", "ok", t(`Shipment ${id} created (planned).`, `货运 ${id} 已创建（计划中）。`));
      }
    );
    controls.validate(false);
    const [lots, devices] = await Promise.all([listAll("/v1/orgs/{org}/lots", "lots"), listAll("/v1/orgs/{org}/devices", "devices", 100)]);
    checkboxes(
      $("lots-choices"),
      "lot",
      lots.items.map((l) => [`${l.gtin}/${l.lot}`, `${l.gtin} / ${l.lot} (${l.harvest_date})`]),
      lots.error || t("No lots yet.", "尚无批次。")
    );
    checkboxes(
      $("devices-choices"),
      "device",
      devices.items.map((d) => [d.device_id, d.name ? `${d.name} (${d.device_id})` : d.device_id]),
      devices.error || t("No devices yet.", "尚无设备。")
    );
  }

  async function documentForm(form) {
    const max = Number($("limits").dataset.documentBytesMax);
    const mib = (bytes) => (bytes / (1024 * 1024)).toFixed(bytes < 1024 * 1024 ? 2 : 1);
    const controls = wire(
      form,
      [
        {
          id: "file",
          check: () => {
            const file = $("file").files[0];
            if (!file) return t("Choose the file.", "请选择文件。");
            if (file.size === 0) return t("This file is empty.", "该文件为空。");
            if (file.size > max) {
              return t(
                `This file is ${mib(file.size)} MiB; the node takes at most ${mib(max)} MiB. Nothing was sent.`,
                `该文件为 ${mib(file.size)} MiB；节点最多接受 ${mib(max)} MiB。尚未发送任何内容。`
              );
            }
            return null;
          },
        },
        { id: "number", check: () => textError($("number").value, t("document number", "单证编号"), 64) },
        { id: "attach", check: () => ($("attach").value ? null : t("Choose a lot or a shipment.", "请选择批次或货运。")) },
      ],
      async () => {
        const file = $("file").files[0];
        const data = new FormData();
        data.append("type", $("type").value);
        data.append("number", $("number").value.trim());
        const [kind, value] = [$("attach").value.slice(0, $("attach").value.indexOf(":")), $("attach").value.slice($("attach").value.indexOf(":") + 1)];
        data.append(kind, value);
        const media = file.type && /^[\w.+-]+\/[\w.+-]+$/.test(file.type) ? file.type : "application/octet-stream";
        data.append("media_type", media);
        if ($("sign").checked) data.append("sign", "node");
        data.append("file", file, file.name);
        const answer = await api("/v1/documents", { method: "POST", body: data });
        if (!answer.ok) return result("refused", "bad", t("The document was not stored. ", "单证未存储。") + explain(answer));
        const status = answer.data.status;
        result(
          "created",
          "ok",
          status === "valid"
            ? t(`Document ${answer.data.number} stored and signed; its anchor is in the log.`, `单证 ${answer.data.number} 已存储并签署；其锚点已记入日志。`)
            : t(
                `Document ${answer.data.number} stored; it waits for your organisation's signature before it is anchored.`,
                `单证 ${answer.data.number} 已存储；待贵组织签署后再锚定。`
              )
        );
      }
    );
    controls.validate(false);
    const [lots, shipments, keys] = await Promise.all([
      listAll("/v1/orgs/{org}/lots", "lots"),
      listAll("/v1/orgs/{org}/shipments", "shipments"),
      api(path("/v1/orgs/{org}/issuer-keys") + "?limit=100"),
    ]);
    const select = $("attach");
    select.replaceChildren(
      el("option", { value: "", text: t("Choose…", "请选择…") }),
      el("optgroup", { label: t("Lots", "批次") }, ...lots.items.map((l) => el("option", { value: `lot:${l.gtin}/${l.lot}`, text: `${l.gtin} / ${l.lot}` }))),
      el("optgroup", { label: t("Shipments", "货运") }, ...shipments.items.map((s) => el("option", { value: `shipment:${s.org}/${s.id}`, text: `${s.id} → ${s.destination_country}` })))
    );
    const usable = keys.ok && (keys.data.keys || []).some((k) => k.custody === "node" && !k.revoked);
    $("sign").disabled = !usable;
    $("sign").checked = usable;
    $("sign-hint").textContent = usable
      ? t("Your organisation has a node-held signing key: the document is signed and anchored at once.", "贵组织有存放在节点上的签名密钥：单证会立即签署并锚定。")
      : t(
          "Your organisation has no node-held signing key: the document is stored and waits for a signature.",
          "贵组织没有存放在节点上的签名密钥：单证会先存储，等待签署。"
        );
  }

  function deviceForm(form) {
    const hexError = (text, digits, what) => {
      if (!text) return t(`Enter the ${what}.`, `请输入${what}。`);
      if (digits === 64 && /^[A-Za-z0-9+/]{43}=$/.test(text)) {
        return t(
          "This looks like base64: the node takes the key as 64 hex digits (0-9, a-f).",
          "这看起来是 base64：节点要求公钥写成 64 位十六进制数字（0-9、a-f）。"
        );
      }
      const at = [...text].findIndex((c) => !/[0-9a-fA-F]/.test(c));
      if (at >= 0) {
        return t(
          `"${[...text][at]}" at position ${at + 1} is not a hex digit (0-9, a-f).`,
          `第 ${at + 1} 位的“${[...text][at]}”不是十六进制数字（0-9、a-f）。`
        );
      }
      if (text.length !== digits) {
        return digits === 64
          ? t(
              `An Ed25519 public key is 32 bytes, written as 64 hex digits; this has ${text.length}.`,
              `Ed25519 公钥为 32 字节，写成 64 位十六进制数字；这里有 ${text.length} 位。`
            )
          : t(`A device id has 16 hex digits; this has ${text.length}.`, `设备编号为 16 位十六进制数字；这里有 ${text.length} 位。`);
      }
      return null;
    };
    const controls = wire(
      form,
      [
        {
          id: "device-id",
          check: () => {
            const text = $("device-id").value.trim();
            return (
              hexError(text, 16, t("device id", "设备编号")) ||
              (/[A-F]/.test(text) ? t("Write the letters in lower case (a-f).", "字母请用小写（a-f）。") : null)
            );
          },
        },
        { id: "public-key", check: () => hexError($("public-key").value.trim(), 64, t("public key", "公钥")) },
        {
          id: "device-name",
          check: () => ($("device-name").value.trim() ? textError($("device-name").value, t("name", "名称")) : null),
        },
      ],
      async () => {
        const id = $("device-id").value.trim();
        const body = { device_id: id, public_key: $("public-key").value.trim().toLowerCase() };
        if ($("device-name").value.trim()) body.name = $("device-name").value.trim();
        const answer = await api(path("/v1/orgs/{org}/devices"), { method: "POST", json: body });
        if (!answer.ok) return result("refused", "bad", t("The device was not registered. ", "设备未登记。") + explain(answer));
        const key = (answer.data.keys || [])[0];
        const index = key && key.log_index;
        result(
          "created",
          "ok",
          answer.status === 200
            ? t(`Device ${id} was already registered to your organisation with this key.`, `设备 ${id} 已用此公钥登记在贵组织名下。`)
            : index === null || index === undefined
              ? t(`Device ${id} registered.`, `设备 ${id} 已登记。`)
              : t(`Device ${id} registered; its key is at index ${index} of the log.`, `设备 ${id} 已登记；其公钥位于日志第 ${index} 条。`)
        );
      }
    );
    controls.validate(false);
  }

  // ---- The overview ----

  const PAGE = 10;
  /** One list of the overview, a page at a time (`next` from the API behind "More"). */
  function overviewList(id, route, key, row, empty) {
    const section = $(id);
    const box = section.querySelector(".list");
    const list = el("ul");
    let first = true;
    async function more(next) {
      const answer = await api(path(route) + `?limit=${PAGE}` + (next ? "&next=" + encodeURIComponent(next) : ""));
      section.removeAttribute("aria-busy");
      if (!answer.ok) return notice(box, "bad", explain(answer));
      if (first) {
        box.replaceChildren(list);
        first = false;
      }
      const items = answer.data[key] || [];
      list.append(...items.map((item) => el("li", {}, ...row(item))));
      if (!list.children.length) box.replaceChildren(el("p", { class: "hint", text: empty }));
      const button = box.querySelector("button.more");
      if (button) button.remove();
      if (answer.data.next) {
        box.appendChild(el("button", { type: "button", class: "secondary more", text: t("More", "更多"), onclick: () => more(answer.data.next) }));
      }
    }
    more(null);
  }

  function overview() {
    overviewList("plots", "/v1/orgs/{org}/plots", "plots", (p) => [
      el("strong", { text: p.name }),
      ` ${p.id} · ${p.country} · ${Number(p.area_ha).toFixed(2)} ha · `,
      el("a", { href: `/entry/harvest?lang=${code}&plot=${encodeURIComponent(p.id)}`, text: t("record a harvest", "记录采收") }),
    ], t("No plots yet.", "尚无地块。"));
    overviewList("lots", "/v1/orgs/{org}/lots", "lots", (l) => [
      el("a", { href: lotPage(l.gtin, l.lot), text: `${l.gtin} / ${l.lot}` }),
      ` · ${t("harvested", "采收于")} ${l.harvest_date} · ${l.plot}`,
    ], t("No lots yet.", "尚无批次。"));
    overviewList("shipments", "/v1/orgs/{org}/shipments", "shipments", (s) => [
      el("strong", { text: s.id }),
      ` ${s.origin_country} → ${s.destination_country} · ${s.consignee.name} · ${s.status} · ${when(s.planned_departure.time_ms)}`,
    ], t("No shipments yet.", "尚无货运。"));
    overviewList("devices", "/v1/orgs/{org}/devices", "devices", (d) => [
      el("a", { href: `/entry/devices/${encodeURIComponent(d.device_id)}?lang=${code}` }, el("code", { text: d.device_id })),
      d.name ? ` ${d.name}` : "",
    ], t("No devices yet.", "尚无设备。"));
  }

  /** A duration in words, from milliseconds (the sign says ahead or behind). */
  function offsetText(ms) {
    const abs = Math.abs(ms);
    const amount = abs >= 3_600_000 ? `${(abs / 3_600_000).toFixed(1)} h` : abs >= 60_000 ? `${(abs / 60_000).toFixed(1)} min` : `${(abs / 1000).toFixed(1)} s`;
    if (abs < 1000) return t("in step with the node", "与节点一致");
    return ms > 0 ? t(`${amount} ahead of the node`, `比节点快 ${amount}`) : t(`${amount} behind the node (or the reading waited in the device)`, `比节点慢 ${amount}（或读数在设备中等待了）`);
  }

  /** The device page: health from the API, then the quarantine a page at a time. */
  async function deviceHealth() {
    const device = $("device-health").dataset.device;
    const base = path(`/v1/orgs/{org}/devices/${encodeURIComponent(device)}`);
    const summary = $("health-summary");
    const outbox = $("health-outbox").querySelector(".list");
    const keys = $("health-keys").querySelector(".list");
    const answer = await api(`${base}/health`);
    if (!answer.ok) {
      notice(summary, "bad", explain(answer));
    } else {
      const h = answer.data;
      const last = h.last_reading;
      if (!last) {
        summary.replaceChildren(el("p", { id: "health-last", text: t("No reading from this device has been committed yet.", "尚未提交本设备的任何读数。") }));
      } else {
        const clock = h.clock || {};
        summary.replaceChildren(
          el("dl", {},
            el("dt", { text: t("Last reading", "最后一条读数") }),
            el("dd", { id: "health-last", text: `#${last.sequence} · ${when(last.device_time_ms)} · ${t("received", "接收于")} ${when(last.ingest_time_ms)}` }),
            el("dt", { text: t("Battery", "电池") }),
            el("dd", { text: `${(last.battery_mv / 1000).toFixed(2)} V` }),
            el("dt", { text: t("Device clock", "设备时钟") }),
            el("dd", { id: "health-clock", text: offsetText(clock.offset_ms || 0) + (clock.skewed_readings ? ` · ${t(`${clock.skewed_readings} of the last ${h.readings_examined} readings flagged`, `最近 ${h.readings_examined} 条读数中有 ${clock.skewed_readings} 条被标记`)}` : "") })
          )
        );
        const o = h.outbox;
        const rows = [
          el("p", { id: "health-missing", text: o.missing ? t(`${o.missing} sequence numbers missing between #${o.first_sequence} and #${o.last_sequence}.`, `#${o.first_sequence} 至 #${o.last_sequence} 之间缺少 ${o.missing} 个序号。`) : t(`None missing between #${o.first_sequence} and #${o.last_sequence}.`, `#${o.first_sequence} 至 #${o.last_sequence} 之间没有缺失。`) }),
        ];
        if (o.gaps.length) rows.push(el("ul", {}, ...o.gaps.map((g) => el("li", { text: g.first === g.last ? `#${g.first}` : `#${g.first} – #${g.last}` }))));
        rows.push(el("p", { text: t(`Samples the device reports having dropped: ${o.dropped_samples} (${o.dropped_samples_in_window} in this stretch).`, `设备报告丢弃的采样：${o.dropped_samples}（本段内 ${o.dropped_samples_in_window}）。`) }));
        outbox.replaceChildren(...rows);
      }
      keys.replaceChildren(el("ul", {}, ...(h.keys || []).map((k) => el("li", {},
        `${t("epoch", "版本")} ${k.key_epoch} · `,
        el("code", { text: k.public_key }),
        ` · ${k.status === "active" ? t("active", "有效") : t("revoked", "已吊销")} · ${t("since", "自")} ${when(k.effective_time_ms)}`,
        k.log_index != null ? ` · ${t("log entry", "日志条目")} ${k.log_index}` : ""
      ))));
    }
    const section = $("health-quarantine");
    const box = section.querySelector(".list");
    const table = el("table", {}, el("thead", {}, el("tr", {},
      el("th", { scope: "col", text: t("Received", "接收时间") }),
      el("th", { scope: "col", text: t("Sequence", "序号") }),
      el("th", { scope: "col", text: t("Reason", "原因") }),
      el("th", { scope: "col", text: t("Bytes", "字节数") })
    )));
    const tbody = el("tbody");
    table.append(tbody);
    const reasons = {
      undecodable: t("does not decode", "无法解码"),
      oversized: t("too large", "过大"),
      topic_device_mismatch: t("sent on another device's topic", "在其他设备的主题上发送"),
      unknown_device: t("device not registered then", "当时设备未登记"),
      revoked_key: t("signed with a revoked key", "使用已吊销的密钥签名"),
      bad_signature: t("signature does not verify", "签名无法验证"),
      conflicting_replay: t("another reading under a used sequence number", "已用序号下的另一条读数"),
    };
    async function more(next) {
      const page = await api(`${base}/quarantine?limit=${PAGE}` + (next ? "&next=" + encodeURIComponent(next) : ""));
      section.removeAttribute("aria-busy");
      if (!page.ok) return notice(box, "bad", explain(page));
      tbody.append(...page.data.quarantine.map((q) => el("tr", {},
        el("td", { text: when(q.ingest_time_ms) }),
        el("td", { text: q.sequence != null ? `#${q.sequence}` : "—" }),
        el("td", { text: reasons[q.reason] || q.reason }),
        el("td", { text: String(q.original_len) })
      )));
      box.replaceChildren(tbody.children.length ? el("div", { class: "table-wrap" }, table) : el("p", { id: "quarantine-empty", class: "hint", text: t("Nothing refused.", "没有被拒绝的数据。") }));
      if (page.data.next) box.appendChild(el("button", { type: "button", class: "secondary more", text: t("More", "更多"), onclick: () => more(page.data.next) }));
    }
    more(null);
  }

  if (!org) return;
  if ($("entry-overview")) return overview();
  if ($("device-health")) return deviceHealth();
  const form = $("entry-form");
  if (!form) return;
  const forms = { plot: plotForm, harvest: harvestForm, packing: packingForm, shipment: shipmentForm, document: documentForm, device: deviceForm };
  const setup = forms[form.dataset.form];
  if (setup) setup(form);
})();

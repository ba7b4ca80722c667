// The consumer page's one script: checks, in this browser, that one anchored record of the lot
// is in the log. It fetches the lot's public journey and the log key, recomputes the RFC 9162
// (section 2.1.3.2) inclusion path of the first anchored event with WebCrypto SHA-256,
// compares the root with the checkpoint's, and verifies the checkpoint's Ed25519 note signature
// (C2SP signed-note) with WebCrypto where the browser has Ed25519. It says what it checked, and
// "could not check" rather than a false "verified".
"use strict";
(function () {
  const section = document.getElementById("verify");
  if (!section) return;
  const zh = section.dataset.lang === "zh";
  const t = (en, cn) => (zh ? cn : en);
  const status = document.getElementById("verify-status");
  const steps = document.getElementById("verify-steps");
  const step = (ok, text) => {
    const li = document.createElement("li");
    li.className = ok ? "ok" : "bad";
    li.textContent = (ok ? "\u2713 " : "\u2717 ") + text;
    steps.appendChild(li);
  };
  const finish = (state, text) => {
    section.dataset.result = state;
    status.className = state === "verified" ? "ok" : "bad";
    status.textContent = text;
  };
  const enc = new TextEncoder();
  const hex = (s) => {
    if (typeof s !== "string" || !/^([0-9a-f]{2})*$/i.test(s)) throw new Error("not hex");
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  };
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  // RFC 9162 section 2.1.3.2: the root of a tree of `size` from leaf `index` and its path.
  async function rootFromPath(index, size, leaf, path) {
    if (index >= size) throw new Error("index past the tree");
    let fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
    for (const p of path) {
      if (sn === 0n) throw new Error("path too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(concat(Uint8Array.of(1), p, r));
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await sha256(concat(Uint8Array.of(1), r, p));
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("path too short");
    return r;
  }

  // A C2SP checkpoint note: "origin\nsize\nbase64(root)\n[extensions]\n\n— name base64(...)\n".
  function parseNote(note) {
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("not a signed note");
    const body = note.slice(0, split + 1);
    const lines = body.split("\n");
    const signatures = note.slice(split + 2).split("\n").filter((l) => l.startsWith("\u2014 "))
      .map((l) => { const [, name, sig] = l.split(" "); return { name, sig: b64(sig) }; });
    return { body, origin: lines[0], size: BigInt(lines[1]), root: b64(lines[2]), signatures };
  }

  async function checkSignature(note, vkey) {
    // vkey: name+hex(key ID)+base64(0x01 || public key); names have no "+", base64 may.
    const text = vkey.trim();
    const first = text.indexOf("+");
    const name = text.slice(0, first);
    const id = text.slice(first + 1, first + 9);
    if (first < 1 || text[first + 9] !== "+") throw new Error("not a verifier key");
    const key = text.slice(first + 10);
    const raw = b64(key);
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 note key");
    const keyId = (await sha256(concat(enc.encode(name + "\n"), raw))).slice(0, 4);
    if (!equal(keyId, hex(id))) throw new Error("key ID does not match the key");
    const line = note.signatures.find((s) => s.name === name && equal(s.sig.slice(0, 4), keyId));
    if (!line) return { ok: false, why: t("no signature by the log key", "没有日志密钥的签名"), name };
    let publicKey;
    try {
      publicKey = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      return { ok: null, why: t("this browser has no WebCrypto Ed25519", "此浏览器不支持 WebCrypto Ed25519"), name };
    }
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, publicKey, line.sig.slice(4), enc.encode(note.body));
    return { ok, why: "", name };
  }

  async function run() {
    if (!window.crypto || !crypto.subtle) {
      finish("unchecked", t("Could not check: this browser has no WebCrypto.", "无法核验：此浏览器不支持 WebCrypto。"));
      return;
    }
    const [journey, vkey] = await Promise.all([
      fetch(section.dataset.journey, { headers: { Accept: "application/json" } }).then((r) => {
        if (!r.ok) throw new Error("journey " + r.status);
        return r.json();
      }),
      fetch("/v1/log/key").then((r) => { if (!r.ok) throw new Error("log key " + r.status); return r.text(); }),
    ]);
    const events = journey.events || [];
    const event = events.find((e) => e.proof && /commission|harvest/.test(e.biz_step || ""))
      || events.find((e) => e.proof);
    if (!event) {
      finish("unchecked", t("Could not check: no record of this lot is anchored in the log yet.", "无法核验：此批次尚无记录写入日志。"));
      return;
    }
    const proof = event.proof;
    const checkpoint = (journey.checkpoints || []).find((c) => c.tree_size === proof.tree_size);
    if (!checkpoint) throw new Error("no checkpoint for the proof");
    const note = parseNote(checkpoint.checkpoint);
    const stepZh = { commissioning: "采收", harvesting: "采收", packing: "包装", shipping: "发运" };
    const what = t("the " + (event.biz_step || "first") + " record (log entry " + proof.leaf_index + ")",
                   (stepZh[event.biz_step] || "首条") + "记录（日志条目 " + proof.leaf_index + "）");
    const root = await rootFromPath(proof.leaf_index, proof.tree_size, hex(proof.entry_leaf_hash),
                                    proof.path.map(hex));
    const included = equal(root, note.root) && note.size === BigInt(proof.tree_size);
    step(included, t("Merkle path (SHA-256, RFC 9162) of " + what + " leads to the root of checkpoint " + note.size,
                     what + " 的 Merkle 路径（SHA-256，RFC 9162）指向检查点 " + note.size + " 的根"));
    if (!included) {
      finish("failed", t("NOT verified: the proof does not match the signed checkpoint.", "未通过验证：证明与签名检查点不符。"));
      return;
    }
    const signature = await checkSignature(note, vkey);
    if (signature.ok === null) {
      step(false, t("Checkpoint signature: could not check (", "检查点签名：无法核验（") + signature.why + t(")", "）"));
      finish("unchecked", t("Partly checked: the record is in the log, but this browser could not check the log's signature.", "部分核验：记录在日志中，但此浏览器无法核验日志签名。"));
      return;
    }
    step(signature.ok, t("Ed25519 signature of checkpoint " + note.size + " by the log key " + signature.name,
                         "日志密钥 " + signature.name + " 对检查点 " + note.size + " 的 Ed25519 签名"));
    if (!signature.ok) {
      finish("failed", t("NOT verified: the checkpoint's signature is not the log's. ", "未通过验证：检查点签名不是日志的签名。") + signature.why);
      return;
    }
    finish("verified", t("Verified in this browser: " + what + " is in the log, and the log signed it.",
                         "已在本浏览器中验证：" + what + " 已写入日志，且日志已签名。"));
  }

  run().catch((e) => {
    step(false, String(e && e.message ? e.message : e));
    finish("failed", t("NOT verified: the proof could not be checked.", "未通过验证：证明无法核验。"));
  });
})();

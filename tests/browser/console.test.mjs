// The customs console in Debian's Chromium, driven by playwright-core, against a real node that
// `cargo xtask test-browser` started and seeded (AGRITRACE_URL; AGRITRACE_SEED names the seed
// file: the shipment declared to the customs authority, the officer's and the clerk's tokens;
// AGRITRACE_BIN holds the debug binaries, `agritrace-verify` among them). Each test saves a
// screenshot of the state it checks into AGRITRACE_SCREENSHOTS as console-*.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.env.AGRITRACE_URL;
const seedFile = process.env.AGRITRACE_SEED;
const shots = process.env.AGRITRACE_SCREENSHOTS;
const bin = process.env.AGRITRACE_BIN;
const executablePath = process.env.AGRITRACE_CHROMIUM || "/usr/bin/chromium";
if (!base || !seedFile || !shots || !bin) {
  throw new Error("run these tests with `cargo xtask test-browser`: it builds, starts and seeds the node");
}
const seed = JSON.parse(fs.readFileSync(seedFile, "utf8"));
const verifier = path.join(bin, "agritrace-verify");
if (!fs.existsSync(verifier)) {
  throw new Error(`${verifier} is missing: cargo build -p agritrace-verify (cargo xtask test-browser builds it)`);
}
/** The seeded certificate's exact bytes. */
const CERTIFICATE = "%PDF-1.7\nphytosanitary certificate\n%%EOF\n";
/** How long the console may take to fill in a page (a guard against hanging, not a timing assertion). */
const PATIENCE_MS = 30_000;
/** How long to keep asking for the evidence bundle while a witness has not cosigned (a guard). */
const EVIDENCE_PATIENCE_MS = 60_000;
const shipmentPath = `/console/shipments/${seed.org}/${seed.shipment}`;

let browser;
let files;
before(async () => {
  browser = await chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
  files = fs.mkdtempSync(path.join(os.tmpdir(), "agritrace-console-"));
});
after(async () => {
  if (browser) await browser.close();
  if (files) fs.rmSync(files, { recursive: true, force: true });
});

/** A desk-sized (or phone-sized) page in `locale`. */
async function open({ phone = false, locale = "en-US" } = {}) {
  const context = await browser.newContext({
    locale,
    viewport: phone ? { width: 390, height: 844 } : { width: 1280, height: 900 },
    deviceScaleFactor: phone ? 2 : 1,
    acceptDownloads: true,
  });
  return { context, page: await context.newPage() };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `console-${name}.png`), fullPage: true });
}

/**
 * Opens `target` without a token (the page sends the browser to the sign-in form), signs in
 * through the form with `token`, and waits to be back on `target`.
 */
async function signIn(page, token, target) {
  await page.goto(base + target);
  await page.waitForURL((url) => url.pathname === "/login", { timeout: PATIENCE_MS });
  await page.fill("#token", token);
  await Promise.all([
    page.waitForURL((url) => url.pathname === target.split("?")[0], { timeout: PATIENCE_MS }),
    page.click("#login-form button[type=submit]"),
  ]);
}

/** Waits until the console's script has filled the page in. */
async function ready(page) {
  await page.waitForSelector("#console[data-ready=true], #refusal", { timeout: PATIENCE_MS });
}

test("a wrong token is refused on the sign-in form, which stays", async () => {
  const { context, page } = await open();
  await page.goto(base + "/console");
  await page.waitForURL((url) => url.pathname === "/login", { timeout: PATIENCE_MS });
  assert.equal(new URL(page.url()).searchParams.get("next"), "/console");
  await page.fill("#token", "agt_0123456789abcdef_" + "A".repeat(43));
  await page.click("#login-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("login-error").textContent !== "", null, {
    timeout: PATIENCE_MS,
  });
  assert.match(await page.textContent("#login-error"), /not accepted/);
  assert.equal(new URL(page.url()).pathname, "/login");
  assert.equal(await page.getAttribute("#token", "aria-invalid"), "true");
  assert.equal(await page.isHidden("#sign-out"), true, "no one to sign out");
  await shot(page, "1-wrong-token");
  await context.close();
});

test("the officer signs in and finds the shipment declared to the authority", async () => {
  const { context, page } = await open();
  await signIn(page, seed.customs_token, "/console");
  await ready(page);
  const rows = page.locator("#shipment-table tbody tr");
  const row = rows.filter({ hasText: seed.shipment });
  assert.equal(await row.count(), 1, await page.textContent("#shipments"));
  const text = await row.textContent();
  for (const expected of [seed.org, "Bangkok Fresh Co. (TH)", "CN → TH", `${seed.gtin}/${seed.lot}`, "Arrived"]) {
    assert.ok(text.includes(expected), `${expected} in ${text}`);
  }
  assert.match(await page.textContent("#who"), new RegExp(`@ ${seed.customs_org}`));
  // Origin and text filter the loaded page; a bad country says so and filters nothing.
  await page.fill("#f-origin", "TH");
  assert.equal(await row.count(), 0);
  await page.fill("#f-origin", "cn");
  assert.equal(await row.count(), 1);
  await page.fill("#f-origin", "C");
  assert.equal(await page.getAttribute("#f-origin", "aria-invalid"), "true");
  assert.match(await page.textContent("#f-origin-error"), /two letters/);
  assert.equal(await row.count(), 1);
  await page.fill("#f-origin", "");
  await page.fill("#f-text", "bangkok fresh");
  assert.equal(await row.count(), 1);
  await page.fill("#f-text", "no such consignee");
  assert.equal(await row.count(), 0);
  await page.fill("#f-text", "");
  // Status is asked of the node.
  await page.selectOption("#f-status", "planned");
  await page.waitForFunction(() => /No shipment/.test(document.getElementById("list-status").textContent), null, {
    timeout: PATIENCE_MS,
  });
  assert.equal(await rows.count(), 0);
  await page.selectOption("#f-status", "arrived");
  await row.waitFor({ timeout: PATIENCE_MS });
  assert.match(await page.textContent("#list-status"), /Showing 1 of 1/);
  assert.equal(await page.isHidden("#more"), true, "one page holds every shipment");
  await shot(page, "2-list");
  await Promise.all([
    page.waitForURL((url) => url.pathname === shipmentPath, { timeout: PATIENCE_MS }),
    row.locator("a").click(),
  ]);
  await ready(page);
  assert.match(await page.textContent("#summary-body"), /Bangkok Fresh Co\./);
  await context.close();
});

test("the list pages with the API's cursor: “Load more” asks for the next page, the filters cover both", async () => {
  const { context, page } = await open();
  // The seeded node holds one shipment: the answers are given a cursor, and the second page a
  // second shipment, as a node holding more would answer.
  const asked = [];
  await page.route(
    (url) => url.pathname === "/v1/shipments",
    async (route) => {
      const url = new URL(route.request().url());
      asked.push(new URLSearchParams(url.search));
      const cursor = url.searchParams.get("next");
      url.searchParams.delete("next");
      const response = await route.fetch({ url: url.toString() });
      const body = await response.json();
      if (cursor === null) {
        body.next = "00ff";
      } else {
        body.shipments = body.shipments.map((s) => ({ ...s, id: `${s.id}-b`, origin_country: "VN" }));
        body.next = null;
      }
      await route.fulfill({ response, json: body });
    },
  );
  await signIn(page, seed.customs_token, "/console");
  await ready(page);
  const rows = page.locator("#shipment-table tbody tr");
  assert.equal(await rows.count(), 1);
  assert.equal(await page.isVisible("#more"), true);
  assert.match(await page.textContent("#list-status"), /More are on the node/);
  await page.click("#more");
  await page.locator(`#shipment-table tbody tr[data-shipment="${seed.org}/${seed.shipment}-b"]`).waitFor({ timeout: PATIENCE_MS });
  assert.equal(await rows.count(), 2);
  assert.equal(await page.isHidden("#more"), true, "the last page");
  assert.equal(asked.length, 2);
  for (const query of asked) {
    assert.equal(query.get("declared_to"), seed.customs_org);
    assert.equal(query.get("limit"), "50");
  }
  assert.equal(asked[0].get("next"), null);
  assert.equal(asked[1].get("next"), "00ff", "the cursor the first page answered");
  await page.fill("#f-origin", "VN");
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().textContent(), /VN → TH/);
  await shot(page, "2b-list-paged");
  await context.close();
});

test("one shipment: summary, trace graph with its list, cold chain chart, verified certificate", async () => {
  const { context, page } = await open();
  await signIn(page, seed.customs_token, shipmentPath);
  await ready(page);
  const summary = await page.textContent("#summary-body");
  for (const expected of [seed.org, "Bangkok Fresh Co. (TH)", "CN → TH", seed.customs_org, `${seed.gtin}/${seed.lot}`, "Mohan", "Bangkok", "Arrived"]) {
    assert.ok(summary.includes(expected), `${expected} in ${summary}`);
  }
  // The graph: the plot, the lot, its three events, their places and the shipment.
  const kinds = await page.locator("#trace-graph svg .graph-node").evaluateAll((nodes) => nodes.map((n) => n.dataset.kind));
  for (const kind of ["plot", "lot", "event", "location", "shipment"]) {
    assert.ok(kinds.includes(kind), `a ${kind} node in ${kinds}`);
  }
  assert.equal(kinds.filter((k) => k === "event").length, 3, `${kinds}`);
  assert.ok((await page.locator("#trace-graph svg path.graph-edge").count()) >= 5, "edges are drawn");
  const list = await page.locator("#trace-list li").allTextContents();
  assert.equal(list.length, kinds.length, "the list names every node drawn");
  for (const expected of ["Harvested", "Packed", "Shipped", "hillside-7", seed.lot, seed.shipment]) {
    assert.ok(list.some((item) => item.includes(expected)), `${expected} in ${list.join("\n")}`);
  }
  // The list is reachable by keyboard, and focusing an entry marks its node in the drawing.
  await page.focus("#trace-list li[data-node^='event:']");
  assert.equal(await page.locator("#trace-graph .graph-node.focus").count(), 1);
  assert.equal(await page.locator("#trace-graph .graph-node.focus").getAttribute("data-kind"), "event");
  // The cold chain: the line over the band, the excursions the logger's warm readings made.
  assert.ok(await page.isVisible("#cold-chain svg.chart polyline"), "the temperature line");
  assert.equal(await page.locator("#cold-chain rect.band").count(), 1, "the band");
  assert.ok((await page.locator("#cold-chain rect.excursion").count()) >= 1, "an excursion");
  assert.match(await page.textContent("#cold-chain-body"), /Readings: 240/);
  assert.match(await page.textContent("#cold-chain-body"), /band 0\.0 – 4\.0 °C/);
  // The certificate, its signature checked, with its history.
  const certificate = page.locator("#documents .document").filter({ hasText: "Phytosanitary certificate KM-2026-0001" });
  assert.equal(await certificate.count(), 1, await page.textContent("#documents"));
  assert.equal(await certificate.locator(".doc-verdict").getAttribute("data-verdict"), "verified");
  assert.match(await certificate.locator(".doc-verdict").textContent(), /^Verified\. Signed by mango-coop .*the key was valid when it signed/);
  assert.match(await certificate.locator(".history").textContent(), /issue · .* · log index \d+/);
  await shot(page, "3-shipment");
  await context.close();
});

test("a document handed over is checked: the certificate is recognised, a changed copy matches nothing", async () => {
  const { context, page } = await open();
  await signIn(page, seed.customs_token, shipmentPath);
  await ready(page);
  const original = path.join(files, "certificate.pdf");
  fs.writeFileSync(original, CERTIFICATE);
  // Through the file input (what a keyboard reaches).
  await page.setInputFiles("#check-file", original);
  await page.waitForSelector("#check-result[data-result=match]", { timeout: PATIENCE_MS });
  const found = await page.textContent("#check-result");
  assert.match(found, /This is the anchored Phytosanitary certificate KM-2026-0001/);
  assert.match(found, new RegExp(`shipment ${seed.org}/${seed.shipment}`));
  assert.match(found, new RegExp(`lot ${seed.gtin}/${seed.lot}`));
  assert.match(found, /Signed by mango-coop .*the signature verifies/);
  assert.match(found, /Status: valid/);
  assert.match(found, /Hashed in this browser/);
  await page.locator("#check").scrollIntoViewIfNeeded();
  await shot(page, "4-check-recognised");
  // Dropped on the zone: one changed byte.
  const changed = CERTIFICATE.replace("phytosanitary", "phytosanitarY");
  const transfer = await page.evaluateHandle((text) => {
    const data = new DataTransfer();
    data.items.add(new File([text], "certificate-copy.pdf", { type: "application/pdf" }));
    return data;
  }, changed);
  await page.dispatchEvent("#drop-zone", "dragover", { dataTransfer: transfer });
  assert.equal(await page.getAttribute("#drop-zone", "class"), "drop-zone over");
  await page.dispatchEvent("#drop-zone", "drop", { dataTransfer: transfer });
  await page.waitForSelector("#check-result[data-result=no-match]", { timeout: PATIENCE_MS });
  const none = await page.textContent("#check-result");
  assert.match(none, /No anchored document matches “certificate-copy\.pdf”/);
  assert.match(none, /may have been changed/);
  await shot(page, "5-check-changed");
  await context.close();
});

test("without WebCrypto the file goes to the node to be hashed, and is still recognised", async () => {
  const { context, page } = await open();
  await page.addInitScript(() => {
    Object.defineProperty(Crypto.prototype, "subtle", { get: () => undefined, configurable: true });
  });
  await signIn(page, seed.customs_token, shipmentPath);
  await ready(page);
  const uploads = [];
  page.on("request", (request) => {
    if (request.url().endsWith("/v1/verify/document")) uploads.push(request.headers()["content-type"] || "");
  });
  const original = path.join(files, "certificate-upload.pdf");
  fs.writeFileSync(original, CERTIFICATE);
  await page.setInputFiles("#check-file", original);
  await page.waitForSelector("#check-result[data-result=match]", { timeout: PATIENCE_MS });
  assert.match(await page.textContent("#check-result"), /Sent to the node to be hashed/);
  assert.match(await page.textContent("#check-result"), /Signed by mango-coop/);
  assert.ok(uploads.length === 1 && uploads[0].startsWith("multipart/form-data"), `${uploads}`);
  await context.close();
});

test("evidence is exported as the sealed bundle, which agritrace-verify checks offline", async () => {
  const { context, page } = await open();
  await signIn(page, seed.customs_token, shipmentPath);
  await ready(page);
  const deadline = Date.now() + EVIDENCE_PATIENCE_MS;
  let download = null;
  while (!download) {
    const downloaded = page.waitForEvent("download", { timeout: PATIENCE_MS }).catch(() => null);
    await page.click("#export-evidence");
    await page.waitForSelector("#evidence-result:is([data-result=downloaded], [data-result=retry], [data-result=error])", {
      timeout: PATIENCE_MS,
    });
    const result = await page.getAttribute("#evidence-result", "data-result");
    const said = await page.textContent("#evidence-result");
    if (result === "downloaded") {
      download = await downloaded;
      assert.ok(download, "the browser saw a download");
    } else if (result === "retry" && Date.now() < deadline) {
      // A witness has not cosigned yet: the page said so; ask again, as it tells the officer.
      console.log(`evidence not ready yet: ${said}`);
      assert.match(said, /Try again/);
      await page.waitForTimeout(1_000);
    } else {
      assert.fail(`the export did not succeed: ${result}: ${said}`);
    }
  }
  const name = download.suggestedFilename();
  assert.equal(name, `shipment-${seed.org}-${seed.shipment}.evidence.txt`);
  const file = path.join(files, name);
  await download.saveAs(file);
  const bundle = fs.readFileSync(file, "utf8");
  assert.ok(bundle.startsWith("agritrace/evidence-bundle/v1\n"), bundle.slice(0, 80));
  const said = await page.textContent("#evidence-result");
  assert.match(said, new RegExp(`Downloaded ${name.replace(/\./g, "\\.")} \\(\\d+ bytes\\)`));
  assert.match(said, /tree size \d+/);
  assert.match(said, /agritrace-verify evidence /);
  const verified = spawnSync(verifier, ["evidence", file], { encoding: "utf8" });
  assert.equal(verified.status, 0, `agritrace-verify evidence: ${verified.stdout}${verified.stderr}`);
  assert.match(verified.stdout, /RESULT: VERIFIED/);
  assert.match(verified.stdout, new RegExp(`shipment ${seed.org}/${seed.shipment}`));
  assert.match(verified.stdout, /Trade documents\s+1/);
  // One changed byte in the file and the same check fails.
  const tampered = path.join(files, "tampered.evidence.txt");
  fs.writeFileSync(tampered, bundle.replace(`subject shipment ${seed.org}/${seed.shipment}`, `subject shipment ${seed.org}/${seed.shipment}x`));
  assert.notEqual(spawnSync(verifier, ["evidence", tampered], { encoding: "utf8" }).status, 0);
  await page.locator("#evidence").scrollIntoViewIfNeeded();
  await shot(page, "6-evidence");
  await context.close();
});

test("a clerk opening the console is told in plain words that it is not for that role", async () => {
  const { context, page } = await open();
  await signIn(page, seed.clerk_token, "/console");
  await ready(page);
  const refusal = await page.textContent("#refusal");
  assert.match(refusal, /This console is for customs officers and auditors/);
  assert.match(refusal, /with the role producer/);
  assert.equal(await page.getAttribute("#refusal", "role"), "alert");
  assert.equal(await page.isHidden("#shipments"), true, "no empty list under the refusal");
  await shot(page, "7-clerk-refused");
  await context.close();
});

test("the console on a phone, in Chinese", async () => {
  const { context, page } = await open({ phone: true, locale: "zh-CN" });
  await signIn(page, seed.customs_token, shipmentPath);
  await ready(page);
  assert.equal(await page.getAttribute("html", "lang"), "zh-Hans");
  assert.match(await page.textContent("header h1"), /货物/);
  assert.match(await page.textContent("#export-evidence"), /导出证据/);
  assert.match(await page.textContent("#summary-body"), /收货人/);
  assert.ok(await page.isVisible("#cold-chain svg.chart polyline"), "the chart on a phone");
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page fits the phone's width (${width}px); the graph scrolls in its own box`);
  await shot(page, "8-shipment-zh-phone");
  await page.goto(base + "/console?lang=zh");
  await ready(page);
  assert.match(await page.textContent("#shipment-table thead"), /收货人/);
  assert.equal(await page.locator("#shipment-table tbody tr").count(), 1);
  await shot(page, "9-list-zh-phone");
  await context.close();
});

// The consumer page in Debian's Chromium, driven by playwright-core, against a real node that
// `cargo xtask test-browser` started and seeded (AGRITRACE_URL, AGRITRACE_LOT_PATH). Each test
// saves a screenshot of the page state it checks into AGRITRACE_SCREENSHOTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.env.AGRITRACE_URL;
const lotPath = process.env.AGRITRACE_LOT_PATH;
const shots = process.env.AGRITRACE_SCREENSHOTS;
const executablePath = process.env.AGRITRACE_CHROMIUM || "/usr/bin/chromium";
if (!base || !lotPath || !shots) {
  throw new Error("run these tests with `cargo xtask test-browser`: it starts and seeds the node");
}
/** The budget for the page, everything the browser transferred included. */
const PAGE_BYTES_MAX = 100 * 1024;
/** How long the in-page check may take (a guard against hanging, not a timing assertion). */
const VERIFY_PATIENCE_MS = 30_000;

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
});
after(async () => {
  if (browser) await browser.close();
});

/** A phone-sized page in `locale`. */
async function phone(locale = "en-US") {
  const context = await browser.newContext({
    locale,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
  });
  return { context, page: await context.newPage() };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** Waits for the in-page check to finish; its result (`verified`, `failed`, `unchecked`). */
async function verification(page) {
  await page.waitForSelector("#verify[data-result]", { timeout: VERIFY_PATIENCE_MS });
  const result = await page.getAttribute("#verify", "data-result");
  // What the page said, for the failure message of the assertion that follows.
  console.log(`in-page check: ${result}: ${(await page.textContent("#verify")).replace(/\s+/g, " ")}`);
  return result;
}

test("scanning the code opens the lot's page: product, plot, journey, cold chain, certificates", async () => {
  const { context, page } = await phone();
  const transfers = [];
  page.on("requestfinished", (request) => {
    transfers.push(
      request.sizes().then((s) => ({
        url: request.url(),
        bytes: s.responseBodySize + s.responseHeadersSize,
      })),
    );
  });
  const response = await page.goto(base + lotPath);
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-type"], /^text\/html/);
  assert.equal(await page.getAttribute("html", "lang"), "en");
  assert.equal((await page.textContent("h1")).trim(), "Alphonso mango");
  assert.match(await page.textContent("#product"), /MH-2026-001/);
  assert.match(await page.textContent("#origin"), /Hillside 7/);
  assert.match(await page.textContent("#origin"), /2026-06-01/);
  assert.ok(await page.isVisible("#plot-map polygon"), "the plot is drawn");
  const steps = await page.locator("#journey li").allTextContents();
  for (const expected of ["Harvested", "Packed", "Shipped", "Departed", "Arrived"]) {
    assert.ok(steps.some((s) => s.includes(expected)), `${expected} in ${steps}`);
  }
  assert.ok(await page.isVisible("#cold-chain svg.chart polyline"), "the temperature line");
  assert.ok((await page.locator("#cold-chain rect.band").count()) === 1, "the band");
  assert.ok((await page.locator("#cold-chain rect.excursion").count()) >= 1, "an excursion");
  const certificates = await page.textContent("#certificates");
  assert.match(certificates, /phytosanitary_certificate/);
  assert.match(certificates, /issuer signature verified/);
  assert.equal(await verification(page), "verified");
  await page.waitForLoadState("networkidle");
  const sizes = await Promise.all(transfers);
  const total = sizes.reduce((n, s) => n + s.bytes, 0);
  assert.ok(total > 0 && total < PAGE_BYTES_MAX, `transferred ${total} bytes: ${JSON.stringify(sizes)}`);
  console.log(`page weight: ${total} bytes transferred in ${sizes.length} requests`);
  await shot(page, "1-page-en");
  await context.close();
});

test("the browser checks the proof itself: Merkle path and the checkpoint's Ed25519 signature", async () => {
  const { context, page } = await phone();
  await page.goto(base + lotPath);
  assert.equal(await verification(page), "verified");
  const steps = await page.locator("#verify-steps li").allTextContents();
  assert.equal(steps.length, 2, steps.join("\n"));
  assert.match(steps[0], /Merkle path \(SHA-256, RFC 9162\)/);
  assert.match(steps[1], /Ed25519 signature of checkpoint/);
  assert.equal(await page.locator("#verify-steps li.ok").count(), 2);
  assert.match(await page.textContent("#verify-status"), /^Verified in this browser/);
  await page.locator("#verify").scrollIntoViewIfNeeded();
  await shot(page, "2-verified");
  await context.close();
});

test("a tampered proof shows as NOT verified", async () => {
  const { context, page } = await phone();
  await page.route("**/v1/public/lots/**/journey", async (route) => {
    const response = await route.fetch();
    const journey = await response.json();
    // Flip one byte of every path's first hash.
    for (const event of journey.events) {
      const hash = event.proof && event.proof.path[0];
      if (hash) {
        const flipped = (parseInt(hash.slice(0, 2), 16) ^ 0x01).toString(16).padStart(2, "0");
        event.proof.path[0] = flipped + hash.slice(2);
      }
    }
    await route.fulfill({ response, json: journey });
  });
  await page.goto(base + lotPath);
  assert.equal(await verification(page), "failed");
  assert.match(await page.textContent("#verify-status"), /^NOT verified/);
  assert.equal(await page.locator("#verify-steps li.ok").count(), 0);
  await page.locator("#verify").scrollIntoViewIfNeeded();
  await shot(page, "3-tampered");
  await context.close();
});

test("a forged checkpoint signature shows as NOT verified", async () => {
  const { context, page } = await phone();
  await page.route("**/v1/public/lots/**/journey", async (route) => {
    const response = await route.fetch();
    const journey = await response.json();
    for (const c of journey.checkpoints) {
      // Change the origin line: the Merkle path still leads to the root, the signature no
      // longer covers the text.
      c.checkpoint = c.checkpoint.replace(/^([^\n]*)\n/, "$1x\n");
    }
    await route.fulfill({ response, json: journey });
  });
  await page.goto(base + lotPath);
  assert.equal(await verification(page), "failed");
  const steps = await page.locator("#verify-steps li").allTextContents();
  assert.match(steps[0], /Merkle path/);
  assert.equal(await page.locator("#verify-steps li.ok").count(), 1, steps.join("\n"));
  await shot(page, "4-forged-signature");
  await context.close();
});

test("a browser without WebCrypto Ed25519 says it could not check the signature, not verified", async () => {
  const { context, page } = await phone();
  await page.addInitScript(() => {
    const importKey = crypto.subtle.importKey.bind(crypto.subtle);
    crypto.subtle.importKey = (format, data, algorithm, ...rest) =>
      (algorithm && (algorithm.name || algorithm)) === "Ed25519"
        ? Promise.reject(new DOMException("Unrecognized algorithm name", "NotSupportedError"))
        : importKey(format, data, algorithm, ...rest);
  });
  await page.goto(base + lotPath);
  assert.equal(await verification(page), "unchecked");
  assert.match(await page.textContent("#verify-status"), /^Partly checked/);
  const steps = await page.locator("#verify-steps li").allTextContents();
  assert.match(steps[0], /Merkle path/);
  assert.match(steps[1], /could not check/);
  assert.equal(await page.locator("#verify-steps li.ok").count(), 1, steps.join("\n"));
  await shot(page, "5-no-ed25519");
  await context.close();
});

test("Chinese by Accept-Language, English by the switch, and the switch is reachable by keyboard", async () => {
  const { context, page } = await phone("zh-CN");
  await page.goto(base + lotPath);
  assert.equal(await page.getAttribute("html", "lang"), "zh-Hans");
  assert.equal((await page.textContent("h1")).trim(), "阿方索芒果");
  assert.match(await page.textContent("#journey"), /采收/);
  assert.equal(await verification(page), "verified");
  assert.match(await page.textContent("#verify-status"), /已在本浏览器中验证/);
  await shot(page, "6-page-zh");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), "lang-switch");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.match(page.url(), /\?lang=en$/);
  assert.equal(await page.getAttribute("html", "lang"), "en");
  assert.equal((await page.textContent("h1")).trim(), "Alphonso mango");
  await shot(page, "7-switched-en");
  await context.close();
});

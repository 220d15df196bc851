// Browser test driver for the storefront: headless Debian chromium driven by
// playwright-core, in a fresh profile.
//
//   node e2e/storefront.mjs            (from web/, after npm ci)
//
// Environment:
//   STOREFRONT_URL      the page, e.g. http://127.0.0.1:8080/ (required)
//   SHOP_USER           who logs in through the issuer's form (default alice)
//   SHOP_PASSWORD       their password (default: the user name)
//   E2E_SEARCH          a search term that matches some products (default runner)
//   E2E_PRODUCT         exact name of the product put in the cart (default Trail runner)
//   E2E_CART            "0" stops after login and search (no cart service); default "1"
//   E2E_PROMO_CODE      a promo code to apply once the product is in the cart (optional)
//   E2E_DOOMED_PRODUCT  exact name of a second product put in the cart, which the caller
//                       deletes during the price change; it must then show as unavailable
//                       (optional)
//   E2E_PRICE_CHANGE    "stdin" (default): print "READY_FOR_PRICE_CHANGE <productId>
//                       [<doomedProductId>]" and wait for one line on stdin, the new unit
//                       price as the page shows it (e.g. "€79.99"; empty: any price with the
//                       price-changed badge); "skip": do not wait for a price change
//   SCREENSHOT_PATH     where the screenshot goes (default test-artifacts/storefront.png);
//                       on failure the page at that moment is saved there instead
//   CHROMIUM_PATH       the browser (default /usr/bin/chromium)
//   E2E_TIMEOUT_MS      how long one wait may take (default 30000)
//
// Progress goes to stdout as "e2e: ..." lines; any failure exits 1 with the reason.
import { chromium } from "playwright-core";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";

const env = process.env;
const storefrontUrl = required("STOREFRONT_URL");
const user = env.SHOP_USER || "alice";
const password = env.SHOP_PASSWORD || user;
const searchTerm = env.E2E_SEARCH || "runner";
const productName = env.E2E_PRODUCT || "Trail runner";
const withCart = (env.E2E_CART ?? "1") !== "0";
const promoCode = env.E2E_PROMO_CODE || "";
const doomedName = env.E2E_DOOMED_PRODUCT || "";
const priceChange = env.E2E_PRICE_CHANGE || "stdin";
const screenshotPath = env.SCREENSHOT_PATH || "test-artifacts/storefront.png";
const chromiumPath = env.CHROMIUM_PATH || "/usr/bin/chromium";
const timeout = Number(env.E2E_TIMEOUT_MS || 30000);

function required(name) {
  const v = env[name];
  if (!v) {
    console.error(`e2e: ${name} is required`);
    process.exit(2);
  }
  return v;
}

function log(msg) {
  console.log(`e2e: ${msg}`);
}

function check(ok, msg) {
  if (!ok) throw new Error(msg);
}

/** nextLine resolves with the next line on stdin, or rejects at EOF. */
function stdinLines() {
  const rl = createInterface({ input: process.stdin });
  const queue = [];
  const waiters = [];
  let closed = false;
  rl.on("line", (line) => (waiters.length ? waiters.shift().resolve(line) : queue.push(line)));
  rl.on("close", () => {
    closed = true;
    while (waiters.length) waiters.shift().reject(new Error("stdin closed before the price change was announced"));
  });
  return {
    next: () =>
      queue.length
        ? Promise.resolve(queue.shift())
        : closed
          ? Promise.reject(new Error("stdin closed before the price change was announced"))
          : new Promise((resolve, reject) => waiters.push({ resolve, reject })),
    close: () => rl.close(),
  };
}

const profile = await mkdtemp(join(tmpdir(), "storefront-e2e-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
  ],
  locale: "en-US",
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(timeout);
const page = context.pages()[0] ?? (await context.newPage());
const catalogCalls = [];
page.on("request", (req) => {
  if (req.url().includes("/shop.product.v1.ProductService/ListProducts")) catalogCalls.push(req.method());
});
page.on("console", (msg) => {
  if (msg.type() === "error") log(`browser console: ${msg.text()}`);
});
const stdin = priceChange === "stdin" && withCart ? stdinLines() : undefined;

let exitCode = 0;
try {
  await run();
  await shoot(screenshotPath);
  log(`screenshot saved to ${screenshotPath}`);
  await page.getByTestId("logout").click();
  await page.getByTestId("login").waitFor();
  check((await page.getByTestId("cart-logged-out").count()) === 1, "the cart still shows after logout");
  log("logged out: the token is gone and the cart hidden");
  log("PASS");
} catch (err) {
  exitCode = 1;
  console.error(`e2e: FAIL: ${err instanceof Error ? err.message : err}`);
  await shoot(screenshotPath).catch(() => {});
} finally {
  stdin?.close();
  await context.close().catch(() => {});
  await rm(profile, { recursive: true, force: true });
}
process.exit(exitCode);

async function shoot(path) {
  await mkdir(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
}

function cardNamed(name) {
  return page.getByTestId("product-card").filter({ has: page.getByTestId("product-name").getByText(name, { exact: true }) });
}

async function search(term) {
  await page.getByTestId("search-input").fill(term);
  await page.getByTestId("search-submit").click();
  const lower = term.toLowerCase();
  await page.waitForFunction(
    (q) => {
      const list = document.querySelector("[data-testid=product-list]");
      const names = [...document.querySelectorAll("[data-testid=product-name]")].map((n) => n.textContent.toLowerCase());
      return list && !list.hasAttribute("aria-busy") && names.length > 0 && names.every((n) => n.includes(q));
    },
    lower,
  );
  return page.getByTestId("product-card").count();
}

async function run() {
  log(`open ${storefrontUrl}`);
  await page.goto(storefrontUrl);
  await page.locator("body[data-ready=true]").waitFor();
  const all = await page.getByTestId("product-card").count();
  check(all > 0, "the catalog lists no products");
  log(`catalog lists ${all} products`);

  const found = await search(searchTerm);
  check(found > 0 && found <= all, `search for "${searchTerm}" found ${found} of ${all}`);
  log(`search "${searchTerm}" narrows the list to ${found}`);
  check(catalogCalls.length > 0 && catalogCalls.every((m) => m === "GET"), `catalog reads went out as ${catalogCalls.join(",")}, want only GET`);
  log(`catalog reads used HTTP GET (${catalogCalls.length} calls)`);

  log(`log in as ${user} through the issuer`);
  await page.getByTestId("login").click();
  await page.getByTestId("dev-issuer-banner").waitFor();
  await page.locator("#username").fill(user);
  await page.locator("#password").fill(password);
  await page.locator("#login").click();
  await page.getByTestId("session-user").waitFor();
  const who = await page.getByTestId("session-user").textContent();
  check(who === user, `signed in as "${who}", want "${user}"`);
  check(!new URL(page.url()).searchParams.has("code"), `the login code is still in the address bar: ${page.url()}`);
  log(`signed in as ${who}`);

  if (!withCart) {
    log("E2E_CART=0: cart, wishlist and price change skipped");
    return;
  }

  await search(productName);
  const card = cardNamed(productName);
  check((await card.count()) === 1, `want exactly one product named "${productName}", got ${await card.count()}`);
  const productId = await card.getAttribute("data-product-id");
  const listed = await card.getByTestId("product-price").textContent();
  await card.getByTestId("add-to-cart").click();
  const line = page.locator(`[data-testid=cart-item][data-product-id="${productId}"]`);
  await line.waitFor();
  const before = await line.getByTestId("cart-item-price").textContent();
  check(before === listed, `cart shows ${before}, the catalog ${listed}`);
  check((await line.getByTestId("badge-price-changed").count()) === 0, "a fresh line is already flagged as price-changed");
  log(`added ${productName} (${productId}) at ${before}; total ${await page.getByTestId("cart-total").textContent()}`);

  await card.getByTestId("add-to-wishlist").click();
  await page.locator(`[data-testid=wishlist-item][data-product-id="${productId}"]`).waitFor();
  log("saved it to the wishlist");

  if (promoCode) {
    await page.getByTestId("promo-input").fill(promoCode);
    await page.getByTestId("promo-apply").click();
    await page.locator(`[data-testid=promo-code][data-code="${promoCode.toUpperCase()}"]`).waitFor();
    await page.getByTestId("cart-discount").waitFor();
    log(`promo ${promoCode} applied: discount ${await page.getByTestId("cart-discount").textContent()}, total ${await page.getByTestId("cart-total").textContent()}`);
  }

  let doomedId = "";
  if (doomedName) {
    await search(doomedName);
    const doomed = cardNamed(doomedName);
    check((await doomed.count()) === 1, `want exactly one product named "${doomedName}", got ${await doomed.count()}`);
    doomedId = await doomed.getAttribute("data-product-id");
    await doomed.getByTestId("add-to-cart").click();
    await page.locator(`[data-testid=cart-item][data-product-id="${doomedId}"]`).waitFor();
    log(`added ${doomedName} (${doomedId}), to be deleted by the admin; total ${await page.getByTestId("cart-total").textContent()}`);
  }

  if (priceChange !== "stdin") {
    log("E2E_PRICE_CHANGE=skip: not waiting for a price change");
    return;
  }
  console.log(`READY_FOR_PRICE_CHANGE ${productId}${doomedId ? " " + doomedId : ""}`);
  const want = (await stdin.next()).trim();
  log(`price change announced${want ? `: want ${want}` : ""}`);

  const flagged = ({ id, price, gone }) => {
    const line = (pid) => document.querySelector(`[data-testid=cart-item][data-product-id="${pid}"]`);
    const el = line(id);
    if (!el || !el.querySelector("[data-testid=badge-price-changed]")) return false;
    if (gone && !line(gone)?.querySelector("[data-testid=badge-unavailable]")) return false;
    const shown = el.querySelector("[data-testid=cart-item-price]")?.textContent;
    return price === "" || shown === price;
  };
  try {
    // The page polls the cart on its own; give it most of the time first.
    await page.waitForFunction(flagged, { id: productId, price: want, gone: doomedId }, { timeout });
    log("the open page picked up the new price by itself");
  } catch {
    log("not seen live; reloading the page");
    await page.reload();
    await page.locator("body[data-ready=true]").waitFor();
    await page.waitForFunction(flagged, { id: productId, price: want, gone: doomedId }, { timeout });
  }
  const now = await line.getByTestId("cart-item-price").textContent();
  const was = await line.getByTestId("cart-item-was").textContent();
  log(`PRICE_CHANGE_SEEN ${productId}: now ${now}, was ${was.trim()}, flagged "Price changed"`);
  if (doomedId) {
    log(`UNAVAILABLE_SEEN ${doomedId}: flagged "Unavailable"; total now ${await page.getByTestId("cart-total").textContent()}`);
  }
}

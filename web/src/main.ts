// The storefront: browse, filter and search the catalog; a cart with
// price-changed and unavailable badges, promo codes and totals; a wishlist;
// login through the issuer's authorization-code flow with PKCE.
import { Code, ConnectError } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { newApi, type Api } from "./api.js";
import { beginLogin, completeLogin, currentSession, logout, type Session } from "./auth.js";
import { loadConfig, type ShopConfig } from "./config.js";
import { byId } from "./dom.js";
import { parseMajor } from "./money.js";
import { CartSchema, type Cart, type CartItem } from "./gen/shop/cart/v1/cart_pb.js";
import type { Wishlist } from "./gen/shop/cart/v1/wishlist_pb.js";
import type { Category } from "./gen/shop/product/v1/category_pb.js";
import type { ListProductsRequest, Product } from "./gen/shop/product/v1/product_pb.js";
import { productCard, renderCart, renderCategories, renderSession, renderWishlist } from "./views.js";

type Filter = Partial<Pick<ListProductsRequest, "query" | "categoryId" | "minPriceMinor" | "maxPriceMinor">>;

const pageSize = 24;
const maxCategoryPages = 20;

class Storefront {
  private session: Session | undefined = currentSession();
  private filter: Filter = {};
  private nextPageToken = "";
  private productSeq = 0;
  private cart: Cart | undefined;
  private cartJSON = "";
  private cartError: string | undefined;
  private wishlist: Wishlist | undefined;
  private wishlistError: string | undefined;
  private readonly api: Api;

  constructor(private readonly cfg: ShopConfig) {
    this.api = newApi(cfg, () => this.token());
  }

  private token(): string | undefined {
    this.session = currentSession();
    return this.session?.accessToken;
  }

  async start(): Promise<void> {
    try {
      const fresh = await completeLogin(this.cfg);
      if (fresh) {
        this.session = fresh;
        this.say(`Welcome, ${fresh.username}.`);
      }
    } catch (err) {
      this.say(describe(err, `the issuer at ${this.cfg.issuerUrl}`), true);
    }
    this.wireFilters();
    this.renderSession();
    this.renderCart();
    this.renderWishlist();
    await Promise.all([this.loadCategories(), this.loadProducts(true), this.refreshCart(), this.refreshWishlist()]);
    // Prices and availability change under the page (events from the
    // catalog): poll the cart and the wishlist while the page is visible.
    const refreshLists = () => {
      if (document.visibilityState === "visible") {
        void this.refreshCart();
        void this.refreshWishlist();
      }
    };
    setInterval(refreshLists, this.cfg.cartPollSeconds * 1000);
    document.addEventListener("visibilitychange", refreshLists);
    document.body.dataset["ready"] = "true";
  }

  // --- messages and errors ---

  private say(text: string, error = false): void {
    const el = byId("message");
    el.textContent = text;
    el.classList.toggle("error", error);
    el.hidden = text === "";
  }

  /** fail reports err from service; an Unauthenticated answer ends the session. */
  private fail(err: unknown, service: string): string {
    if (err instanceof ConnectError && err.code === Code.Unauthenticated) {
      this.sessionEnded();
      return "";
    }
    const text = describe(err, service);
    this.say(text, true);
    return text;
  }

  private catalogName(): string {
    return `the catalog (productsvc at ${this.cfg.productsUrl})`;
  }

  private cartName(): string {
    return `the cart service (cartsvc at ${this.cfg.cartUrl})`;
  }

  // --- session ---

  /** sessionEnded forgets the user after the token expired or was refused. */
  private sessionEnded(): void {
    logout();
    this.session = undefined;
    this.cart = undefined;
    this.cartJSON = "";
    this.wishlist = undefined;
    this.renderAll();
    this.say("Your session has ended: please log in again.", true);
  }

  private renderSession(): void {
    renderSession(byId("session"), this.session, {
      login: () => void beginLogin(this.cfg).catch((err) => this.say(describe(err, `the issuer at ${this.cfg.issuerUrl}`), true)),
      logout: () => {
        logout();
        this.session = undefined;
        this.cart = undefined;
        this.cartJSON = "";
        this.wishlist = undefined;
        this.renderAll();
        this.say("Logged out.");
      },
    });
  }

  private renderAll(): void {
    this.renderSession();
    this.renderCart();
    this.renderWishlist();
    this.rerenderProducts();
  }

  // --- catalog ---

  private wireFilters(): void {
    const form = byId<HTMLFormElement>("filters");
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const filter: Filter = {};
      const query = String(data.get("query") ?? "").trim();
      if (query) filter.query = query;
      const category = String(data.get("category") ?? "");
      if (category) filter.categoryId = category;
      for (const [field, key] of [["min", "minPriceMinor"], ["max", "maxPriceMinor"]] as const) {
        const v = parseMajor(String(data.get(field) ?? ""), this.cfg.currency);
        if (v instanceof Error) {
          this.say(`${field === "min" ? "Min" : "Max"} price: ${v.message}`, true);
          return;
        }
        if (v !== undefined) filter[key] = v;
      }
      this.say("");
      this.filter = filter;
      void this.loadProducts(true);
    });
    form.addEventListener("reset", () => {
      this.filter = {};
      setTimeout(() => void this.loadProducts(true));
    });
    byId("load-more").addEventListener("click", () => void this.loadProducts(false));
  }

  private async loadCategories(): Promise<void> {
    const all: Category[] = [];
    try {
      let pageToken = "";
      for (let i = 0; i < maxCategoryPages; i++) {
        const res = await this.api.categories.listCategories({ pageSize: 100, pageToken });
        all.push(...res.categories);
        pageToken = res.nextPageToken;
        if (!pageToken) break;
      }
    } catch (err) {
      this.fail(err, this.catalogName());
    }
    all.sort((a, b) => a.name.localeCompare(b.name));
    renderCategories(byId<HTMLSelectElement>("category"), all);
  }

  private products: Product[] = [];

  private async loadProducts(reset: boolean): Promise<void> {
    const seq = ++this.productSeq;
    const list = byId("products");
    list.setAttribute("aria-busy", "true");
    try {
      const res = await this.api.products.listProducts({ ...this.filter, pageSize, pageToken: reset ? "" : this.nextPageToken });
      if (seq !== this.productSeq) return; // a newer search won
      this.products = reset ? res.products : [...this.products, ...res.products];
      this.nextPageToken = res.nextPageToken;
      this.rerenderProducts();
    } catch (err) {
      if (seq === this.productSeq) this.fail(err, this.catalogName());
    } finally {
      if (seq === this.productSeq) list.removeAttribute("aria-busy");
    }
  }

  private rerenderProducts(): void {
    const loggedIn = this.session !== undefined;
    const handlers = { add: (p: Product) => void this.addToCart(p), wish: (p: Product) => void this.addToWishlist(p) };
    byId("products").replaceChildren(...this.products.map((p) => productCard(p, loggedIn, handlers)));
    byId("products-empty").hidden = this.products.length > 0;
    byId("load-more").hidden = this.nextPageToken === "";
  }

  // --- cart ---

  private renderCart(): void {
    const loggedIn = this.session !== undefined;
    renderCart(byId("cart-body"), this.cart, { loggedIn, error: this.cartError }, {
      setQuantity: (item: CartItem, quantity: number) =>
        void this.cartCall(() => this.api.cart.updateCartItem({ productId: item.productId, quantity, requestId: crypto.randomUUID() })),
      remove: (item: CartItem) => void this.cartCall(() => this.api.cart.removeCartItem({ productId: item.productId })),
      removePromo: (code: string) => void this.cartCall(() => this.api.cart.removePromoCode({ code })),
      clear: () => void this.cartCall(() => this.api.cart.clearCart({})),
      refresh: () => void this.refreshCart(),
    });
    const promo = byId<HTMLFormElement>("promo-form");
    promo.hidden = !loggedIn || !this.cart;
    if (!promo.dataset["wired"]) {
      promo.dataset["wired"] = "true";
      promo.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const input = byId<HTMLInputElement>("promo-input");
        const code = input.value.trim().toUpperCase();
        if (!code) return;
        void this.cartCall(() => this.api.cart.applyPromoCode({ code })).then((ok) => {
          if (ok) {
            input.value = "";
            this.say(`Promo code ${code} applied.`);
          }
        });
      });
    }
  }

  private setCart(cart: Cart | undefined): void {
    const json = cart ? toJsonString(CartSchema, cart) : "";
    if (json === this.cartJSON && this.cartError === undefined) return;
    this.cart = cart;
    this.cartJSON = json;
    this.cartError = undefined;
    this.renderCart();
    this.syncListedPrices(cart);
  }

  /** syncListedPrices applies what the cart knows to the listed products: live prices, deletions. */
  private syncListedPrices(cart: Cart | undefined): void {
    let changed = false;
    for (const item of cart?.items ?? []) {
      const i = this.products.findIndex((p) => p.id === item.productId);
      const p = this.products[i];
      if (!p) continue;
      if (!item.available) {
        this.products.splice(i, 1);
        changed = true;
      } else if (item.unitPrice && p.price?.amountMinor !== item.unitPrice.amountMinor) {
        p.price = item.unitPrice;
        changed = true;
      }
    }
    if (changed) this.rerenderProducts();
  }

  private async refreshCart(): Promise<void> {
    const shown = this.session !== undefined;
    if (!this.token()) {
      if (shown) this.sessionEnded(); // the token expired while the page was open
      return;
    }
    try {
      const res = await this.api.cart.getCart({});
      this.setCart(res.cart);
    } catch (err) {
      this.cartFailed(err);
    }
  }

  /** cartCall runs a cart RPC that answers with the cart; it reports whether it worked. */
  private async cartCall(call: () => Promise<{ cart?: Cart | undefined }>): Promise<boolean> {
    try {
      const res = await call();
      this.setCart(res.cart);
      return true;
    } catch (err) {
      this.cartFailed(err);
      return false;
    }
  }

  private cartFailed(err: unknown): void {
    const text = this.fail(err, this.cartName());
    if (text && this.session) {
      this.cartError = text;
      this.renderCart();
    }
  }

  private async addToCart(p: Product): Promise<void> {
    if (await this.cartCall(() => this.api.cart.addCartItem({ productId: p.id, quantity: 1, requestId: crypto.randomUUID() }))) {
      this.say(`Added ${p.name} to the cart.`);
    }
  }

  // --- wishlist ---

  private renderWishlist(): void {
    renderWishlist(byId("wishlist-body"), this.wishlist, { loggedIn: this.session !== undefined, error: this.wishlistError }, {
      move: (productId: string) =>
        void this.wishlistCall(async () => {
          const res = await this.api.wishlist.moveWishlistItemToCart({ productId, quantity: 1, requestId: crypto.randomUUID() });
          this.setCart(res.cart);
          return res;
        }),
      remove: (productId: string) => void this.wishlistCall(() => this.api.wishlist.removeWishlistItem({ productId })),
    });
  }

  private async wishlistCall(call: () => Promise<{ wishlist?: Wishlist | undefined }>): Promise<boolean> {
    try {
      const res = await call();
      this.wishlist = res.wishlist;
      this.wishlistError = undefined;
      this.renderWishlist();
      return true;
    } catch (err) {
      const text = this.fail(err, this.cartName());
      if (text && this.session) {
        this.wishlistError = text;
        this.renderWishlist();
      }
      return false;
    }
  }

  private async refreshWishlist(): Promise<void> {
    if (!this.token()) return;
    await this.wishlistCall(() => this.api.wishlist.getWishlist({}));
  }

  private async addToWishlist(p: Product): Promise<void> {
    if (await this.wishlistCall(() => this.api.wishlist.addWishlistItem({ productId: p.id }))) {
      this.say(`Saved ${p.name} to the wishlist.`);
    }
  }
}

/** describe turns an error from service into one line a person can act on. */
function describe(err: unknown, service = "the service"): string {
  if (err instanceof ConnectError) {
    if (err.code === Code.Unknown && err.cause instanceof TypeError) {
      // fetch itself failed: nothing listening, or the browser refused the answer.
      return `Cannot reach ${service}: is it running, and does it allow this page's origin ${location.origin} (CORS)?`;
    }
    switch (err.code) {
      case Code.Unavailable:
        return `${capitalize(service)} is unavailable, try again shortly (${err.rawMessage}).`;
      case Code.Unknown:
      case Code.Internal:
        return `${capitalize(service)} failed: ${err.rawMessage || "unexpected error"}.`;
      default:
        return err.rawMessage || Code[err.code];
    }
  }
  if (err instanceof TypeError) {
    return `Cannot reach ${service}: is it running, and does it allow this page's origin ${location.origin} (CORS)?`;
  }
  return err instanceof Error ? err.message : String(err);
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

async function main(): Promise<void> {
  let cfg: ShopConfig;
  try {
    cfg = await loadConfig();
  } catch (err) {
    const el = byId("message");
    el.textContent = `The storefront is not configured: ${describe(err)}`;
    el.classList.add("error");
    el.hidden = false;
    return;
  }
  await new Storefront(cfg).start();
}

void main();

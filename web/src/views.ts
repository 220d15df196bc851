// Render functions: state in, DOM out. They hold no state; handlers come
// from main.ts.
import { h } from "./dom.js";
import { formatMoney, isZero } from "./money.js";
import type { Session } from "./auth.js";
import type { Cart, CartItem } from "./gen/shop/cart/v1/cart_pb.js";
import type { Wishlist } from "./gen/shop/cart/v1/wishlist_pb.js";
import type { Category } from "./gen/shop/product/v1/category_pb.js";
import type { Product } from "./gen/shop/product/v1/product_pb.js";

export function renderSession(el: HTMLElement, session: Session | undefined, on: { login(): void; logout(): void }): void {
  if (!session) {
    el.replaceChildren(h("button", { type: "button", class: "primary", "data-testid": "login", onclick: on.login }, "Log in"));
    return;
  }
  el.replaceChildren(
    h(
      "span",
      {},
      "Signed in as ",
      h("strong", { "data-testid": "session-user" }, session.username),
      session.roles.includes("admin") ? h("span", { class: "badge changed", "data-testid": "session-admin" }, " admin") : null,
    ),
    h("button", { type: "button", "data-testid": "logout", onclick: on.logout }, "Log out"),
  );
}

export function renderCategories(select: HTMLSelectElement, categories: Category[]): void {
  const chosen = select.value;
  select.replaceChildren(
    h("option", { value: "" }, "All categories"),
    ...categories.map((c) => h("option", { value: c.id, selected: c.id === chosen }, c.name)),
  );
}

export interface ProductHandlers {
  add(p: Product): void;
  wish(p: Product): void;
}

export function productCard(p: Product, loggedIn: boolean, on: ProductHandlers): HTMLElement {
  const hint = loggedIn ? undefined : "Log in to use the cart and wishlist";
  return h(
    "article",
    { class: "card", "data-testid": "product-card", "data-product-id": p.id, "data-sku": p.sku },
    h("h3", { "data-testid": "product-name" }, p.name),
    h("p", { class: "muted", "data-testid": "product-category" }, `${p.categoryName} · ${p.sku}`),
    p.description ? h("p", { class: "muted" }, p.description.length > 140 ? p.description.slice(0, 139) + "…" : p.description) : null,
    h("div", { class: "price", "data-testid": "product-price" }, formatMoney(p.price)),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary", "data-testid": "add-to-cart", disabled: !loggedIn, title: hint, onclick: () => on.add(p) }, "Add to cart"),
      h("button", { type: "button", "data-testid": "add-to-wishlist", disabled: !loggedIn, title: hint, onclick: () => on.wish(p) }, "♡ Save"),
    ),
  );
}

export interface CartHandlers {
  setQuantity(item: CartItem, quantity: number): void;
  remove(item: CartItem): void;
  removePromo(code: string): void;
  clear(): void;
  refresh(): void;
}

/** renderCart shows lines with price-changed and unavailable badges, promo codes and totals. */
export function renderCart(el: HTMLElement, cart: Cart | undefined, status: { loggedIn: boolean; error?: string | undefined }, on: CartHandlers): void {
  if (!status.loggedIn) {
    el.replaceChildren(h("p", { class: "muted", "data-testid": "cart-logged-out" }, "Log in to see your cart."));
    return;
  }
  const parts: (HTMLElement | null)[] = [];
  if (status.error) parts.push(h("p", { class: "notice", "data-testid": "cart-error" }, status.error));
  if (!cart) {
    el.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    return;
  }
  if (cart.stale) {
    parts.push(h("p", { class: "notice", "data-testid": "cart-stale" }, "The catalog is unreachable: prices may be out of date."));
  }
  if (cart.items.length === 0) {
    parts.push(h("p", { class: "muted", "data-testid": "cart-empty" }, "Your cart is empty."));
  }
  for (const item of cart.items) parts.push(cartLine(item, on));
  for (const promo of cart.promoCodes) {
    parts.push(
      h(
        "div",
        { class: "line", "data-testid": "promo-code", "data-code": promo.code },
        h(
          "div",
          { class: "row" },
          h("span", {}, "Promo ", h("strong", {}, promo.code)),
          h("span", {}, "−" + formatMoney(promo.discount)),
          h("button", { type: "button", "data-testid": "promo-remove", onclick: () => on.removePromo(promo.code) }, "Remove"),
        ),
      ),
    );
  }
  if (cart.items.length > 0) {
    parts.push(
      h(
        "div",
        { class: "totals" },
        h("div", {}, h("span", {}, "Subtotal"), h("span", { "data-testid": "cart-subtotal" }, formatMoney(cart.subtotal))),
        isZero(cart.discount) ? null : h("div", {}, h("span", {}, "Discount"), h("span", { "data-testid": "cart-discount" }, "−" + formatMoney(cart.discount))),
        h("div", { class: "total" }, h("span", {}, "Total"), h("span", { "data-testid": "cart-total" }, formatMoney(cart.total))),
      ),
    );
  }
  parts.push(
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", "data-testid": "cart-refresh", onclick: on.refresh }, "Refresh"),
      cart.items.length > 0 ? h("button", { type: "button", "data-testid": "cart-clear", onclick: on.clear }, "Empty cart") : null,
    ),
  );
  el.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
}

function cartLine(item: CartItem, on: CartHandlers): HTMLElement {
  return h(
    "div",
    { class: item.available ? "line" : "line unavailable-line", "data-testid": "cart-item", "data-product-id": item.productId },
    h(
      "div",
      { class: "row" },
      h("strong", { "data-testid": "cart-item-name" }, item.name || item.productId),
      item.available ? null : h("span", { class: "badge unavailable", "data-testid": "badge-unavailable" }, "Unavailable"),
      item.available && item.priceChanged
        ? h("span", { class: "badge changed", "data-testid": "badge-price-changed", title: `was ${formatMoney(item.addedUnitPrice)} when added` }, "Price changed")
        : null,
    ),
    h(
      "div",
      { class: "row" },
      h(
        "span",
        {},
        h("span", { "data-testid": "cart-item-price" }, formatMoney(item.unitPrice)),
        item.priceChanged ? h("span", { class: "was", "data-testid": "cart-item-was" }, formatMoney(item.addedUnitPrice)) : null,
      ),
      h(
        "span",
        { class: "qty" },
        h("button", { type: "button", "aria-label": "One less", "data-testid": "cart-item-decrease", onclick: () => on.setQuantity(item, item.quantity - 1) }, "−"),
        h("span", { "data-testid": "cart-item-quantity" }, String(item.quantity)),
        h("button", { type: "button", "aria-label": "One more", "data-testid": "cart-item-increase", disabled: !item.available || item.quantity >= 999, onclick: () => on.setQuantity(item, item.quantity + 1) }, "+"),
      ),
      h("span", { "data-testid": "cart-item-total" }, item.available ? formatMoney(item.lineTotal) : "–"),
      h("button", { type: "button", "aria-label": `Remove ${item.name}`, "data-testid": "cart-item-remove", onclick: () => on.remove(item) }, "×"),
    ),
  );
}

export interface WishlistHandlers {
  move(productId: string): void;
  remove(productId: string): void;
}

export function renderWishlist(el: HTMLElement, wishlist: Wishlist | undefined, status: { loggedIn: boolean; error?: string | undefined }, on: WishlistHandlers): void {
  if (!status.loggedIn) {
    el.replaceChildren(h("p", { class: "muted" }, "Log in to keep a wishlist."));
    return;
  }
  const parts: HTMLElement[] = [];
  if (status.error) parts.push(h("p", { class: "notice", "data-testid": "wishlist-error" }, status.error));
  if (wishlist && wishlist.items.length === 0) parts.push(h("p", { class: "muted", "data-testid": "wishlist-empty" }, "Nothing saved yet."));
  for (const item of wishlist?.items ?? []) {
    parts.push(
      h(
        "div",
        { class: "line", "data-testid": "wishlist-item", "data-product-id": item.productId },
        h(
          "div",
          { class: "row" },
          h("strong", { "data-testid": "wishlist-item-name" }, item.name || item.productId),
          item.available ? h("span", {}, formatMoney(item.price)) : h("span", { class: "badge unavailable", "data-testid": "badge-unavailable" }, "Unavailable"),
        ),
        h(
          "div",
          { class: "row" },
          h("button", { type: "button", "data-testid": "wishlist-move", disabled: !item.available, onclick: () => on.move(item.productId) }, "Move to cart"),
          h("button", { type: "button", "data-testid": "wishlist-remove", onclick: () => on.remove(item.productId) }, "Remove"),
        ),
      ),
    );
  }
  el.replaceChildren(...parts);
}

// Runtime configuration, read from config.json served next to the page, so
// one build runs against any stack.

export interface ShopConfig {
  /** OIDC issuer URL (discovery at /.well-known/openid-configuration). */
  issuerUrl: string;
  /** Base URL of productsvc (CategoryService, ProductService). */
  productsUrl: string;
  /** Base URL of cartsvc (CartService, WishlistService). */
  cartUrl: string;
  /** The public OAuth client the storefront is (shop-web). */
  clientId: string;
  /** The shop currency (ISO 4217), for the price filter; default EUR. */
  currency: string;
  /** How often the cart is refreshed while the page is visible; default 5. */
  cartPollSeconds: number;
}

export async function loadConfig(): Promise<ShopConfig> {
  const res = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  const raw = (await res.json()) as Record<string, unknown>;
  const str = (key: string, fallback?: string): string => {
    const v = raw[key] ?? fallback;
    if (typeof v !== "string" || v === "") throw new Error(`config.json: "${key}" must be a non-empty string`);
    return v.replace(/\/+$/, "");
  };
  const poll = raw["cartPollSeconds"];
  return {
    issuerUrl: str("issuerUrl"),
    productsUrl: str("productsUrl"),
    cartUrl: str("cartUrl"),
    clientId: str("clientId", "shop-web"),
    currency: str("currency", "EUR"),
    cartPollSeconds: typeof poll === "number" && poll > 0 ? poll : 5,
  };
}

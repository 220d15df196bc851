// Connect clients for the services. Catalog reads go out as HTTP GET
// (cacheable, no preflight); cart and wishlist calls carry the user's token.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { CartService } from "./gen/shop/cart/v1/cart_pb.js";
import { WishlistService } from "./gen/shop/cart/v1/wishlist_pb.js";
import { CategoryService } from "./gen/shop/product/v1/category_pb.js";
import { ProductService } from "./gen/shop/product/v1/product_pb.js";
import type { ShopConfig } from "./config.js";

export interface Api {
  products: Client<typeof ProductService>;
  categories: Client<typeof CategoryService>;
  cart: Client<typeof CartService>;
  wishlist: Client<typeof WishlistService>;
}

/** newApi builds the clients; token() is read for every cart call. */
export function newApi(cfg: ShopConfig, token: () => string | undefined): Api {
  const catalog = createConnectTransport({ baseUrl: cfg.productsUrl, useHttpGet: true });
  const bearer: Interceptor = (next) => (req) => {
    const t = token();
    if (t) req.header.set("Authorization", `Bearer ${t}`);
    return next(req);
  };
  const cart = createConnectTransport({ baseUrl: cfg.cartUrl, interceptors: [bearer] });
  return {
    products: createClient(ProductService, catalog),
    categories: createClient(CategoryService, catalog),
    cart: createClient(CartService, cart),
    wishlist: createClient(WishlistService, cart),
  };
}

// A tiny DOM builder. Text always goes in through textContent, so nothing
// the services return is ever parsed as HTML.

type Child = Node | string | false | null | undefined;
type Attrs = Record<string, string | boolean | undefined | ((ev: Event) => void)>;

/** h creates an element: on* attributes become listeners, true adds an empty attribute, false/undefined skip it. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else if (typeof value === "string") {
      el.setAttribute(name, value);
    }
  }
  for (const child of children) {
    if (child === false || child === null || child === undefined) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** byId returns the element with id, failing loudly if the page lacks it. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
}

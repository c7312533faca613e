// Building DOM nodes without innerHTML: text is always set as text, so a message
// can never become markup (the CSP forbids inline script anyway; this keeps
// injected markup, such as a fake "sign in again" form, out as well).

/**
 * @typedef {object} Props
 * @property {string} [class]
 * @property {string} [text]
 * @property {Record<string, string | number | boolean | null | undefined>} [attrs]
 * @property {Record<string, (event: any) => void>} [on]
 */

/** @typedef {Node | string | null | undefined | false} Child */

/**
 * Create an element: `h("button", {class: "primary", on: {click}}, "Send")`.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  for (const [name, value] of Object.entries(props.attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const [name, handler] of Object.entries(props.on ?? {})) {
    el.addEventListener(name, handler);
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} parent
 * @param {(Child | Child[])[]} children
 */
export function append(parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/**
 * Replace an element's children.
 * @param {Element} el
 * @param {...(Child | Child[])} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Look an element up by id and check its type, failing loudly if the page is wrong.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
export function byId(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`#${id} is missing from index.html`);
  return el;
}

/**
 * A round avatar with the user's initial (no images: nothing to fetch, nothing to track).
 * @param {{username: string, display_name?: string}} user
 * @param {string} [size] "small" | "large"
 */
export function avatar(user, size = "") {
  const name = user.display_name || user.username;
  const initial = Array.from(name.trim())[0]?.toUpperCase() ?? "?";
  // A stable hue per username so people are easy to tell apart.
  let hash = 0;
  for (const ch of user.username) hash = (hash * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return h("span", {
    class: `avatar hue-${hash % 8}${size ? ` avatar-${size}` : ""}`,
    text: initial,
    attrs: { "aria-hidden": "true" },
  });
}

/**
 * Say something to screen-reader users (and show it as a toast).
 * @param {string} text
 * @param {"info" | "error"} [tone]
 */
export function toast(text, tone = "info") {
  const region = byId("toasts", HTMLElement);
  const item = h("p", { class: `toast toast-${tone}`, text, attrs: { role: tone === "error" ? "alert" : "status" } });
  region.append(item);
  setTimeout(() => item.remove(), tone === "error" ? 8000 : 4000);
}

/**
 * Render a list by key: each item's element is kept while its signature stays the same
 * and rebuilt when it changes, and only what moved is moved, so a focused button in the
 * list keeps its focus and nothing flickers. `rendered` carries the elements from one
 * call to the next.
 * @template K
 * @param {HTMLElement} list
 * @param {Map<K, {sig: string, el: HTMLElement}>} rendered
 * @param {{key: K, sig: string, build: () => HTMLElement}[]} items
 */
export function renderKeyed(list, rendered, items) {
  /** @type {HTMLElement[]} */
  const elements = [];
  const keep = new Set();
  for (const item of items) {
    keep.add(item.key);
    let entry = rendered.get(item.key);
    if (!entry || entry.sig !== item.sig) {
      entry = { sig: item.sig, el: item.build() };
      rendered.set(item.key, entry);
    }
    elements.push(entry.el);
  }
  for (const key of [...rendered.keys()]) if (!keep.has(key)) rendered.delete(key);
  /** @type {ChildNode | null} */
  let cursor = list.firstChild;
  for (const el of elements) {
    if (cursor === el) cursor = cursor.nextSibling;
    else list.insertBefore(el, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

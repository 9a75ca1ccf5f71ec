// The frame every page shares: skip link, header (title, role, language switch), navigation, main landmark,
// and a hash router (#/view?param=value) so the browser's back button and links work without a server round trip.
import { h, replace } from "./dom.js";
import { LOCALES, has, locale, onLocale, setLocale, t } from "./i18n.js";

/**
 * Mount a page. ``views``: {id: {title: i18n key, render(main, params) -> void | Promise}}; ``nav``: the view ids
 * in the navigation (in order); ``header``: optional function returning extra header content (who is signed in).
 */
export function startPage({ role, views, nav, home, header }) {
  const app = document.getElementById("app");
  const state = { view: home, params: {} };

  function parseHash() {
    const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
    const id = views[path] ? path : home;
    return { view: id, params: Object.fromEntries(new URLSearchParams(query || "")) };
  }

  async function render() {
    Object.assign(state, parseHash());
    document.documentElement.lang = locale();
    const view = views[state.view];
    document.title = `${t(view.title)} · ${t(`role.${role}`)} · MedLedger`;
    const main = h("main", { id: "main", tabindex: "-1" });
    const select = h(
      "select",
      { id: "locale", onchange: (e) => setLocale(e.target.value) },
      LOCALES.map((l) => h("option", { value: l.code, selected: l.code === locale(), lang: l.code }, l.name)),
    );
    replace(
      app,
      h("a", { class: "skip", href: "#main", onclick: (e) => (e.preventDefault(), main.focus()) }, t("shell.skip")),
      h(
        "header",
        { class: "top" },
        h("a", { class: "brand", href: "index.html" }, "MedLedger"),
        h("span", { class: "role" }, t(`role.${role}`)),
        header ? header() : null,
        h("span", { class: "locale" }, h("label", { for: "locale", class: "sr-only" }, t("shell.language")), select),
      ),
      nav.length > 1
        ? h(
            "nav",
            { "aria-label": t("shell.nav") },
            h(
              "ul",
              {},
              nav.map((id) =>
                h("li", {}, h("a", { href: `#/${id}`, "aria-current": id === state.view ? "page" : null }, t(views[id].title))),
              ),
            ),
          )
        : null,
      main,
    );
    main.append(h("h1", {}, t(view.title)));
    try {
      await view.render(main, state.params, { rerender: render });
    } catch (err) {
      main.append(errorNotice(err));
      console.error(err);
    }
  }

  window.addEventListener("hashchange", render);
  onLocale(render);
  render();
  return { rerender: render };
}

/** An error for people: the translated text of its code when there is one, else the node's message. */
export function errorText(err) {
  const key = `error.${err.code}`;
  return has(key) ? t(key) : err.message || String(err);
}

export function errorNotice(err) {
  return h("p", { class: "notice error", role: "alert" }, errorText(err), err.code ? h("code", {}, ` ${err.code}`) : null);
}

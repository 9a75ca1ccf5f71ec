import { h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { startPage } from "../lib/shell.js";

const ROLES = ["patient", "clinician", "auditor", "operator"];

startPage({
  role: "portal",
  home: "home",
  nav: ["home"],
  views: {
    home: {
      title: "index.title",
      render(main) {
        main.append(
          h("p", {}, t("index.intro")),
          h(
            "div",
            { class: "grid" },
            ROLES.map((role) =>
              h(
                "section",
                { class: "card", "aria-labelledby": `r-${role}` },
                h("h2", { id: `r-${role}` }, t(`role.${role}`)),
                h("p", {}, t(`index.${role}`)),
                h("a", { class: "button", href: `${role}.html` }, t("index.open"), h("span", { class: "sr-only" }, ` ${t(`role.${role}`)}`)),
              ),
            ),
          ),
        );
      },
    },
  },
});

import { h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { startPage } from "../lib/shell.js";

startPage({
  role: "auditor",
  home: "home",
  nav: ["home"],
  views: {
    home: {
      title: "role.auditor",
      render(main) {
        main.append(h("p", {}, t("placeholder.soon")));
      },
    },
  },
});

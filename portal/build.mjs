// Builds the web portal from portal/src into portal/static (committed, like the contract artifacts):
// one self-contained ES module per page (no run-time fetch of code), one stylesheet, the HTML shells.
// Deterministic: same sources + same pinned esbuild => byte-identical output (tests/portal/test_build.py).
//
//   node portal/build.mjs [--out DIR]
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const outIdx = process.argv.indexOf("--out");
const out = outIdx > 0 ? resolve(process.argv[outIdx + 1]) : join(here, "static");
const pages = readdirSync(join(here, "src", "pages"))
  .filter((f) => f.endsWith(".js"))
  .sort();

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

await build({
  entryPoints: pages.map((p) => join(here, "src", "pages", p)),
  outdir: join(out, "assets"),
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2022",
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
await build({
  entryPoints: [join(here, "src", "styles.css")],
  outfile: join(out, "assets", "styles.css"),
  bundle: true,
  minify: true,
  logLevel: "warning",
});
for (const f of readdirSync(join(here, "src", "html")).sort()) {
  copyFileSync(join(here, "src", "html", f), join(out, f));
}
console.log(`portal built: ${pages.length} pages -> ${out}`);

#!/usr/bin/env node
// Compiles contracts/*.sol with the npm-pinned solc (package-lock.json) through standard JSON and writes one
// artifact per deployable contract (ABI + bytecode) to medledger/chain/artifacts/.
// Deterministic: same sources + same solc => byte-identical artifacts (tests/contracts/test_artifacts.py).
//
// usage: node scripts/compile.mjs [--out DIR]
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const contractsDir = join(root, "contracts");
const outIdx = process.argv.indexOf("--out");
const outDir = outIdx > 0 ? resolve(process.argv[outIdx + 1]) : join(root, "medledger", "chain", "artifacts");

// The contracts that get deployed; libraries, interfaces and abstract bases are compiled in but not emitted.
const DEPLOYABLE = ["Consortium", "RecordRegistry", "ConsentRegistry", "AccessLog"];

export const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  viaIR: false,
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"] },
  },
};

function listSol(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listSol(join(dir, e.name)) : e.name.endsWith(".sol") ? [join(dir, e.name)] : [],
  );
}

const sources = {};
for (const file of listSol(contractsDir).sort()) {
  sources[relative(root, file)] = { content: readFileSync(file, "utf8") };
}

function findImports(path) {
  // Only the pinned npm packages are importable; nothing is fetched.
  const candidates = [join(root, "node_modules", path), join(root, path)];
  for (const c of candidates) if (existsSync(c)) return { contents: readFileSync(c, "utf8") };
  return { error: `import not found: ${path}` };
}

const input = { language: "Solidity", sources, settings: SETTINGS };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
// Warnings inside pinned dependencies are not ours to fix; ours are shown.
for (const e of output.errors || []) {
  const file = e.sourceLocation?.file ?? "";
  if (e.severity === "error" || file.startsWith("contracts/")) console.error(e.formattedMessage);
}
if (errors.length) process.exit(1);

mkdirSync(outDir, { recursive: true });
const version = solc.version();
for (const [sourceName, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!DEPLOYABLE.includes(name)) continue;
    const artifact = {
      contractName: name,
      sourceName,
      compiler: { name: "solc", version, settings: { ...SETTINGS, outputSelection: undefined } },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      methodIdentifiers: c.evm.methodIdentifiers,
    };
    const size = c.evm.deployedBytecode.object.length / 2;
    writeFileSync(join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`${name}: ${size} bytes runtime`);
  }
}

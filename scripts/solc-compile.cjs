// Compile a solc standard-JSON input read from stdin with the pinned solc-js from npm,
// resolving imports from contracts/ and node_modules/. Prints the standard-JSON output.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = path.resolve(__dirname, "..");
function findImports(importPath) {
  for (const base of [path.join(root, "contracts"), path.join(root, "node_modules"), root]) {
    const candidate = path.join(base, importPath);
    if (fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `File not found: ${importPath}` };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));

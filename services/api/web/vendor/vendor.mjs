// Copies the browser files the api serves from node_modules into ../static/vendor/, and writes
// ../static/vendor/MANIFEST.json (package versions and each file's sha256).
//
//   cd services/api/web/vendor && npm ci --ignore-scripts && node vendor.mjs [OUTPUT_DIR]
//
// (`make vendor` does exactly that.) The output is committed, so `make dev` needs no npm. The
// copy is byte-for-byte except for trailing source-map comments, which are dropped: the maps are
// not shipped, and a browser's developer tools would otherwise ask for them and get a 404;
// and for the PATCHES below.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const output = process.argv[2] ?? join(here, "..", "static", "vendor");

// package -> files to take (from the package's own directory) -> where they go (under output/).
const FILES = {
  "socket.io-client": {
    "dist/socket.io.esm.min.js": "socket.io/socket.io.esm.min.js",
    LICENSE: "socket.io/LICENSE",
  },
  "swagger-ui-dist": {
    "swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui/swagger-ui.css",
    "favicon-32x32.png": "swagger-ui/favicon-32x32.png",
    LICENSE: "swagger-ui/LICENSE",
    NOTICE: "swagger-ui/NOTICE",
  },
  redoc: {
    "bundles/redoc.standalone.js": "redoc/redoc.standalone.js",
    "bundles/redoc.standalone.js.LICENSE.txt": "redoc/redoc.standalone.js.LICENSE.txt",
    LICENSE: "redoc/LICENSE",
  },
  graphiql: {
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.css": "graphiql/graphiql.min.css",
    LICENSE: "graphiql/LICENSE",
  },
  react: {
    "umd/react.production.min.js": "react/react.production.min.js",
    LICENSE: "react/LICENSE",
  },
  "react-dom": {
    "umd/react-dom.production.min.js": "react/react-dom.production.min.js",
  },
};

// Where a bundle fetches something from the internet by itself, the copy points elsewhere. Each
// is checked to occur exactly once, so an upstream change fails the vendoring loudly.
const PATCHES = {
  "redoc/redoc.standalone.js": [
    {
      why: "ReDoc's side menu loads its maker's logo from a CDN; the link text stays",
      from: '"https://cdn.redoc.ly/redoc/logo-mini.svg"',
      to: `"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"`,
    },
  ],
};

function patch(name, bytes) {
  const patches = PATCHES[name] ?? [];
  if (!patches.length) return bytes;
  let text = bytes.toString("utf8");
  for (const { why, from, to } of patches) {
    const found = text.split(from).length - 1;
    if (found !== 1) throw new Error(`${name}: expected one ${from} (${why}), found ${found}`);
    text = text.replace(from, to);
  }
  return Buffer.from(text, "utf8");
}

const SOURCE_MAP_COMMENT = /\n?(\/\/# sourceMappingURL=\S+|\/\*# sourceMappingURL=\S+ ?\*\/)\s*$/;

function stripSourceMap(name, bytes) {
  if (!/\.(js|css)$/.test(name)) return bytes;
  const text = bytes.toString("utf8");
  return Buffer.from(text.replace(SOURCE_MAP_COMMENT, "\n"), "utf8");
}

rmSync(output, { recursive: true, force: true });
const manifest = { generatedBy: "services/api/web/vendor/vendor.mjs", packages: {} };
for (const [pkg, files] of Object.entries(FILES)) {
  const root = join(here, "node_modules", pkg);
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const entry = { version, files: {} };
  for (const [from, to] of Object.entries(files)) {
    const bytes = patch(to, stripSourceMap(to, readFileSync(join(root, from))));
    mkdirSync(dirname(join(output, to)), { recursive: true });
    writeFileSync(join(output, to), bytes);
    entry.files[to] = createHash("sha256").update(bytes).digest("hex");
  }
  manifest.packages[pkg] = entry;
}
writeFileSync(join(output, "MANIFEST.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`vendored ${Object.keys(FILES).length} packages into ${output}`);

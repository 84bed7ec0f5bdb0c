// Renders Graphviz DOT (stdin) to SVG (stdout) with the pinned WebAssembly Graphviz (@viz-js/viz); used by
// scripts/diagram.sh. Rendering errors go to stderr and exit 1.
import { instance } from "@viz-js/viz";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const viz = await instance();
const result = viz.render(Buffer.concat(chunks).toString("utf8"), { format: "svg", engine: "dot" });
for (const error of result.errors) console.error(`${error.level ?? "error"}: ${error.message}`);
if (result.status !== "success") process.exit(1);
process.stdout.write(result.output);

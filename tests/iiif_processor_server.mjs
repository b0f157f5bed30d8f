// A minimal Node HTTP server around the npm iiif-processor (IIIF Image API 2.1 and 3.0), for tests.
// Env: PORT, IMAGES ("name=/path:name2=/path2"), IIIF_PROCESSOR_DIR (where node_modules/iiif-processor is).
import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.IIIF_PROCESSOR_DIR, "package.json"));
const { Processor } = require("iiif-processor");

const images = new Map(
  (process.env.IMAGES || "").split(path.delimiter).filter(Boolean).map((pair) => {
    const at = pair.indexOf("=");
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);

async function streamResolver({ id }) {
  const file = images.get(id);
  if (!file) throw new Error(`unknown image ${id}`);
  return createReadStream(file);
}

createServer(async (req, res) => {
  const url = `http://${req.headers.host}${req.url}`;
  try {
    const processor = new Processor(url, streamResolver, { pathPrefix: "/iiif/{{version}}/" });
    if (!images.has(processor.id)) {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("not found");
      return;
    }
    const result = await processor.execute();
    if (result.type === "content") {
      res.writeHead(200, { "Content-Type": result.contentType, "Access-Control-Allow-Origin": "*" });
      res.end(result.body);
    } else if (result.type === "redirect") {
      res.writeHead(302, { Location: result.location });
      res.end();
    } else {
      res.writeHead(result.statusCode || 500, { "Content-Type": "text/plain" });
      res.end(result.message || "error");
    }
  } catch (err) {
    res.writeHead(err.statusCode || 400, { "Content-Type": "text/plain" });
    res.end(String(err.message || err));
  }
}).listen(Number(process.env.PORT), "127.0.0.1");

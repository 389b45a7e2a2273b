// Tiny app for deploysafe's end-to-end tests: /health reads the columns the app needs.
import http from "node:http";
import fs from "node:fs";
import pg from "pg";

function readEnvFile(path) {
  const env = {};
  if (!path || !fs.existsSync(path)) return env;
  for (const line of fs.readFileSync(path, "utf8").split("\n")) {
    const m = line.match(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/);
    if (!m) continue;
    let v = m[2];
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    env[m[1]] = v;
  }
  return env;
}

const fileEnv = readEnvFile(process.env.ENV_FILE || ".env");
const url = fileEnv.DATABASE_URL || process.env.DATABASE_URL;
const port = Number(process.env.PORT || fileEnv.PORT || 3000);
const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 3000 });
// An idle connection the server ends (restart, failover, a branch copy) must not crash the app.
pool.on("error", (e) => console.error("database connection lost:", e.message));

const server = http.createServer(async (req, res) => {
  if (req.url === "/health") {
    try {
      await pool.query("select id, email, name from users limit 1");
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    } catch (e) {
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("unhealthy: " + e.message);
    }
    return;
  }
  res.writeHead(404);
  res.end("not found");
});

server.listen(port, "127.0.0.1", () => {
  if (process.env.PID_FILE) fs.writeFileSync(process.env.PID_FILE, String(process.pid));
  console.log(`listening on ${port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => { server.close(); pool.end().finally(() => process.exit(0)); });

// faaso's Node.js runtime: serves the funko's handler over HTTP on $PORT.
// GET /ping is answered here (readiness); every other request goes to the handler.
// A funko may ship its own faaso_server.js to replace this file.
'use strict';
const http = require('http');

const DRAIN_MS = 5000; // after SIGTERM, how long in-flight requests may still run
const handlerPath = process.env.FAASO_HANDLER || '/app/handler.js';
const exported = require(handlerPath);
const handler = typeof exported === 'function' ? exported : exported && exported.handler;
if (typeof handler !== 'function') {
  console.error(`faaso: ${handlerPath} must export a function (req, res)`);
  process.exit(1);
}

// What the handler returned, when it did not end the response itself.
function send(res, result) {
  if (result === undefined || result === null) return res.end();
  if (typeof result === 'string') {
    if (!res.hasHeader('content-type')) res.setHeader('content-type', 'text/plain; charset=utf-8');
    return res.end(result);
  }
  if (Buffer.isBuffer(result)) {
    if (!res.hasHeader('content-type')) res.setHeader('content-type', 'application/octet-stream');
    return res.end(result);
  }
  if (!res.hasHeader('content-type')) res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(result));
}

const server = http.createServer(async (req, res) => {
  if (req.url.split('?')[0] === '/ping' && (req.method === 'GET' || req.method === 'HEAD')) {
    res.setHeader('content-type', 'text/plain');
    return res.end('pong\n');
  }
  try {
    const result = await handler(req, res);
    if (!res.writableEnded) send(res, result);
  } catch (err) {
    console.error(err); // the handler's bug must not kill the server
    if (!res.headersSent) {
      res.statusCode = 500;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ error: String(err && err.message ? err.message : err) }));
    } else {
      res.destroy();
    }
  }
});

// We are often PID 1, which gets no default signal action: handle TERM/INT ourselves.
function stop() {
  server.close(() => process.exit(0)); // stop accepting; exit once open requests finish
  server.closeIdleConnections(); // keep-alive connections would otherwise hold close() open
  setTimeout(() => process.exit(0), DRAIN_MS).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(Number(process.env.PORT || 3000), '0.0.0.0');

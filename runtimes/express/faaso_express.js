// faaso's express runtime: serves the funko's Express app (or router) on $PORT.
// The funko's module ($FAASO_APP, default /app/app.js) exports an express() app, an
// express.Router(), or any (req, res, next) middleware; it must not call listen() itself.
// GET /ping answers 200 unless the funko routes /ping itself.
// A funko may ship its own faaso_express.js to replace this file.
'use strict';
const express = require('express');

const DRAIN_MS = 5000; // after SIGTERM, how long in-flight requests may still run
const appPath = process.env.FAASO_APP || '/app/app.js';
const exported = require(appPath);
const funko = typeof exported === 'function' ? exported : exported && (exported.default || exported.app);
if (typeof funko !== 'function') {
  console.error(`faaso: ${appPath} must export an express() app, an express.Router() or a middleware`);
  process.exit(1);
}

// Whether the funko's own app or router has a route for exactly /ping (its top level only).
function routesPing(handler) {
  const stack = (handler._router && handler._router.stack) || handler.stack || [];
  return stack.some((layer) => layer.route && layer.route.path === '/ping');
}

const app = express();
app.disable('x-powered-by');
// faaso's proxy is the one hop in front (it sets X-Forwarded-For from the peer, never from the
// client): with this req.ip is the client and req.protocol/req.hostname what it asked for.
app.set('trust proxy', 1);
if (!routesPing(funko)) {
  app.get('/ping', (req, res) => res.type('text/plain').send('pong\n'));
}
app.use(funko); // a mounted app keeps its own settings, error handlers and 404

const server = app.listen(Number(process.env.PORT || 3000), '0.0.0.0');

// We are often PID 1, which gets no default signal action: handle TERM/INT ourselves.
function stop() {
  server.close(() => process.exit(0)); // stop accepting; exit once open requests finish
  server.closeIdleConnections(); // keep-alive connections would otherwise hold close() open
  setTimeout(() => process.exit(0), DRAIN_MS).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

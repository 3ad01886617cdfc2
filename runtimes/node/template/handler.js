// The {{name}} funko. faaso calls this function for every request except GET /ping.
//
// req and res are Node's own http.IncomingMessage and http.ServerResponse:
//   req.method, req.url ("/hello?x=1", the part after /funko/{{name}}), req.headers (lowercase),
//   the body is read from req (see readBody below).
// Either answer through res yourself (res.statusCode, res.setHeader, res.end), or return:
//   "text"             200, text/plain
//   Buffer             200, application/octet-stream
//   { a: 1 } / [1, 2]  200, application/json   (set res.statusCode first for another status)
//   nothing            200, empty body
// A thrown error becomes a 500 with {"error": "..."}; the stack goes to the container log.
// Configuration: process.env (funko.yml `env:`), secret files in /secrets/<key>.
// Dependencies: run `npm ci` on your machine and keep node_modules/ in this folder;
// the image build has no network.
'use strict';

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

module.exports = async (req, res) => {
  const url = new URL(req.url, 'http://funko');
  if (req.method === 'POST') {
    const body = await readBody(req);
    return { you_sent: body.toString() };
  }
  return `Hello, ${url.searchParams.get('name') || 'world'}! This is {{name}}.\n`;
};

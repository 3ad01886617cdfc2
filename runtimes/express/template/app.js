// The {{name}} funko: an Express router (or a whole express() app), served on port 3000.
//
// Write routes as in any Express app; paths are the part after /funko/{{name}}.
// GET /ping answers 200 unless you route it (faaso's readiness check). Export the router or
// app and do not call listen(): faaso's runtime does, and stops it on SIGTERM.
// Configuration: process.env (funko.yml `env:`), secret files in /secrets/<key>.
// Dependencies: Express comes with the runtime; for others run `npm ci` on your machine and
// keep node_modules/ in this folder (the image build has no network).
'use strict';
const express = require('express');

const router = express.Router();

router.get('/', (req, res) => {
  res.type('text/plain').send(`Hello, ${req.query.name || 'world'}! This is {{name}}.\n`);
});

router.post('/echo', express.json(), (req, res) => {
  res.json({ you_sent: req.body });
});

module.exports = router;

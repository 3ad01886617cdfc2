// Says hello with Express. Try /funko/hello-express/?name=you, /funko/hello-express/users/7,
// or POST a JSON body to /funko/hello-express/echo.
'use strict';
const express = require('express');

const router = express.Router();

router.get('/', (req, res) => {
  res.type('text/plain').send(`Hello, ${req.query.name || 'world'}!\n`);
});

router.get('/users/:id', (req, res) => {
  res.json({ id: req.params.id });
});

router.post('/echo', express.json(), (req, res) => {
  res.json({ you_sent: req.body });
});

module.exports = router;

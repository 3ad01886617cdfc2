// Shows where configuration comes from: env (funko.yml `env:`) and secret files.
'use strict';
const fs = require('fs/promises');

const SECRET = '/secrets/api-key'; // mounted read-only because funko.yml lists `secrets: [api-key]`

module.exports = async () => {
  const greeting = process.env.GREETING || '(GREETING is not set)';
  let apiKey;
  try {
    apiKey = (await fs.readFile(SECRET, 'utf8')).trim();
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    apiKey = `(no secret file at ${SECRET})`;
  }
  return `greeting: ${greeting}\napi-key: ${apiKey}\n`;
};

// Says hello. Try /funko/hello-node/?name=you
'use strict';

module.exports = async (req) => {
  const name = new URL(req.url, 'http://funko').searchParams.get('name') || 'world';
  return `Hello, ${name}!\n`;
};

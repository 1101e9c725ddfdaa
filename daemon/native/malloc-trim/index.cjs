'use strict';
// Loads the addon built by `node-gyp rebuild` on install (see malloc_trim.c).
module.exports = require('./build/Release/malloc_trim.node');

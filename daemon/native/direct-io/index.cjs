'use strict';
// Loads the addon built by `node-gyp rebuild` on install (see direct_io.c).
module.exports = require('./build/Release/direct_io.node');

'use strict';
// Loads the addon built by `node-gyp rebuild` on install (see cfb_sha1.c).
module.exports = require('./build/Release/cfb_sha1.node');

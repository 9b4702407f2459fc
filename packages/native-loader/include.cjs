// For binding.gyp, as node-addon-api's include_dir:
//   "<!(node -p \"require('@hotweights/native-loader/include').include_dir\")"
// CommonJS because gyp evaluates it with `node -p` and this package is ESM.
const path = require('node:path');

// Relative to the caller's directory (the addon's package), as gyp expects include paths.
const includeDir = path.relative('.', path.join(__dirname, 'include'));

module.exports = { include_dir: includeDir };

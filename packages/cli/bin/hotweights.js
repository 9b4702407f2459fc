#!/usr/bin/env node
// The `hotweights` command. A committed file keeps its executable bit in a fresh clone (tsc
// writes dist/bin.js without one, so a workspace link to it fails with "Permission denied").
import '../dist/bin.js';

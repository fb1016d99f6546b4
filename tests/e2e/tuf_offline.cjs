// Preloaded into npm (NODE_OPTIONS=--require) by tests/e2e/test_e2e_signatures.py.
//
// `npm audit signatures` first asks Sigstore's TUF repository (tuf-repo-cdn.sigstore.dev)
// for a registry's keys, and falls back to the registry's own /-/npm/v1/keys when TUF
// has no target for that registry (TUF_FIND_TARGET_ERROR): the answer TUF gives for
// every registry but registry.npmjs.org, so for r13 on 127.0.0.1 too. The test machines
// cannot reach that host, so npm would stop before asking r13 anything. This gives npm
// that same "no target" answer without the network; everything after it — fetching
// r13's keys, the packuments, and verifying every signature — is npm's own code.
'use strict'
const Module = require('module')
const load = Module.prototype.require
Module.prototype.require = function (id) {
  const exported = load.apply(this, arguments)
  if (id === '@sigstore/tuf' && !exported.r13Offline) {
    exported.initTUF = async () => ({
      getTarget: async (target) => {
        throw Object.assign(new Error(`no TUF target ${target}`), { code: 'TUF_FIND_TARGET_ERROR' })
      },
    })
    exported.r13Offline = true
  }
  return exported
}

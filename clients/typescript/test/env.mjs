// Loads the built package and the Effect modules it was built against (this
// package's node_modules, the versions tests/interop pins), after building
// what is missing or stale. Tests import everything Effect through here so
// that there is exactly one copy of `effect` in the process.
//
//   const { client, effect, rpc } = await loadPackage();
import { ensureBuilt } from '../scripts/build.mjs';

export async function loadPackage() {
  ensureBuilt();
  const [client, effect, rpc, platformNode] = await Promise.all([
    import('../dist/index.js'),
    import('effect'),
    import('@effect/rpc'),
    import('@effect/platform-node'),
  ]);
  return { client, effect, rpc, platformNode };
}

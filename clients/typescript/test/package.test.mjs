// The package as a user gets it: `npm pack`, install the tarball into a
// scratch Effect application (tests/interop's dependency set: its lock file
// and node_modules, so nothing is fetched; --offline), type-check and compile
// examples/app.ts against the installed .d.ts files, run it against usersd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { withFake, startDaemon, seedUser, tokenFor, makeTempDir } from '../../../tests/integration/harness.mjs';
import { ensureBuilt, PKG_DIR } from '../scripts/build.mjs';

const run = promisify(execFile);
const INTEROP_DIR = fileURLToPath(new URL('../../../tests/interop/', import.meta.url));
const TSC = path.join(PKG_DIR, 'node_modules/typescript/bin/tsc');
const npmQuiet = ['--no-audit', '--no-fund', '--loglevel=error'];

test('npm pack gives a tarball that installs into an Effect app and works there', async (t) => {
  ensureBuilt();
  const tmp = await makeTempDir('usc-pack-');
  t.after(() => fsp.rm(tmp, { recursive: true, force: true }));

  // dist/ is fresh (ensureBuilt), so the prepack tsc run is skipped.
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp, ...npmQuiet], { cwd: PKG_DIR });
  const [info] = JSON.parse(packed.stdout);
  assert.equal(info.name, '@usersd/client');
  const files = info.files.map((f) => f.path).sort();
  for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/promise.js', 'dist/schema.d.ts', 'examples/app.ts']) {
    assert.ok(files.includes(f), `${f} is in the tarball: ${files.join(' ')}`);
  }
  for (const f of files) assert.ok(!/^(test|scripts|node_modules)\//.test(f), `${f} should not be published`);
  const tarball = path.join(tmp, info.filename);

  // The scratch application: a stock Effect app with tests/interop's pinned dependencies.
  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(INTEROP_DIR, f), path.join(app, f));
  const interopModules = path.join(INTEROP_DIR, 'node_modules');
  assert.ok(fs.existsSync(path.join(interopModules, '.package-lock.json')), 'tests/interop/node_modules is missing: `make test` (or `npm ci` in tests/interop) installs it');
  fs.cpSync(interopModules, path.join(app, 'node_modules'), { recursive: true, verbatimSymlinks: true });

  // --legacy-peer-deps: the peers are already in the app (and checked by `npm ls` below); resolving them
  // again would need registry metadata that `npm ci` does not cache, i.e. the network.
  await run('npm', ['install', '--offline', '--legacy-peer-deps', ...npmQuiet, tarball], { cwd: app });
  const appPkg = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
  assert.match(appPkg.dependencies['@usersd/client'], /\.tgz$/);
  // Exit code 0 only when every dependency, peers included, is present and in range.
  await run('npm', ['ls', '--offline', '@usersd/client', 'effect', '@effect/rpc', '@effect/platform', '@effect/platform-node'], { cwd: app });
  const installed = path.join(app, 'node_modules/@usersd/client');
  assert.ok(!fs.lstatSync(installed).isSymbolicLink(), 'installed as a copy, as from the registry');

  // Compile the example against the installed package's declarations, as a TypeScript user would.
  fs.copyFileSync(path.join(PKG_DIR, 'examples/app.ts'), path.join(app, 'app.ts'));
  fs.writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        exactOptionalPropertyTypes: true,
        typeRoots: [path.join(PKG_DIR, 'node_modules/@types')],
        types: ['node'],
        outDir: '.',
      },
      files: ['app.ts'],
    }),
  );
  try {
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: app });
  } catch (e) {
    assert.fail(`examples/app.ts does not compile against the installed package:\n${e.stdout}${e.stderr}`);
  }

  const fake = await withFake({ t });
  const d = await startDaemon({ fake, t });
  const wu = await seedUser(fake);
  const token = await tokenFor(fake, wu);
  const out = await run(process.execPath, ['app.js'], { cwd: app, env: { ...process.env, USERSD_SOCKET: d.socketPath, USERSD_TOKEN: token }, timeout: 30_000 });
  const [effectLine, promiseLine] = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(effectLine.api, 'effect');
  assert.equal(effectLine.isCurrentUser, true);
  assert.equal(effectLine.timezone, 'Europe/Paris');
  assert.equal(effectLine.denied, 'UnauthorizedError');
  assert.equal(promiseLine.api, 'promise');
  assert.equal(promiseLine.id, effectLine.id);
  assert.equal(promiseLine.timezone, 'Europe/Paris');
  assert.equal(promiseLine.isOnboarded, true);
  assert.equal(promiseLine.createdAtIsDate, true);
  assert.ok(promiseLine.transactionId > effectLine.transactionId);
  assert.equal(promiseLine.deniedClass, true);
});

// The Prometheus rules (contrib/prometheus/usersd-alerts.yaml) and the
// Grafana dashboard (contrib/grafana/usersd.json) name only metrics, and
// labels, that usersd really exports: the real daemon is started against the
// WorkOS fake, exercised until the labelled families have series, and every
// PromQL expression is checked against its admin.metrics text.
//
// Environment: USERSD_BIN (the daemon).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { withFake, startDaemon, connect, newUser, ok, suiteScope, waitFor, SOURCE_DIR } from './harness.mjs';

const RULES = path.join(SOURCE_DIR, 'contrib/prometheus/usersd-alerts.yaml');
const DASHBOARD = path.join(SOURCE_DIR, 'contrib/grafana/usersd.json');

// Series that do not come from usersd, with the labels the rules use on
// them: node_exporter's scrape health and its textfile collector.
const FOREIGN = {
  up: new Set(),
  node_textfile_mtime_seconds: new Set(['file']),
};
// Labels Prometheus attaches to every scraped series.
const TARGET_LABELS = new Set(['instance', 'job']);

// ------------------------------------------------------------ exposition

/** name -> Set of label names, from the Prometheus text exposition. */
function parseExposition(text) {
  const families = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+$/.exec(line);
    assert.ok(m, `unparsable exposition line: ${line}`);
    const labels = families.get(m[1]) ?? new Set();
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(l[1]);
    families.set(m[1], labels);
  }
  return families;
}

// ------------------------------------------------------------------ PromQL

const FUNCTIONS = new Set(
  ('abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year ' +
    'days_in_month delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate label_join ' +
    'label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc sqrt ' +
    'time timestamp vector year avg_over_time min_over_time max_over_time sum_over_time count_over_time ' +
    'quantile_over_time stddev_over_time stdvar_over_time last_over_time present_over_time ' +
    'sum min max avg group stddev stdvar count count_values bottomk topk quantile').split(' '),
);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The selectors of a PromQL expression: [{metric, labels: [names]}], plus the
 * label names of its by/without/on/ignoring/group_* lists.
 */
function parsePromql(expr) {
  const src = expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(\w+)\}?/g, 'x');
  const selectors = [];
  const grouping = [];
  let i = 0;
  const skipSpace = () => {
    while (i < src.length && /\s/.test(src[i])) i++;
  };
  const readString = () => {
    const q = src[i++];
    while (i < src.length && src[i] !== q) i += src[i] === '\\' ? 2 : 1;
    assert.ok(i < src.length, `unterminated string in ${expr}`);
    i++;
  };
  const readMatchers = () => {
    // at '{'
    const names = [];
    i++;
    for (;;) {
      skipSpace();
      if (src[i] === '}') return i++, names;
      const m = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*/.exec(src.slice(i));
      assert.ok(m, `bad label matcher in ${expr} at ${src.slice(i)}`);
      names.push(m[1]);
      i += m[0].length;
      assert.ok(src[i] === '"' || src[i] === "'" || src[i] === '`', `label value not quoted in ${expr}`);
      readString();
      skipSpace();
      if (src[i] === ',') i++;
    }
  };
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'" || c === '`') {
      readString();
    } else if (c === '[') {
      i = src.indexOf(']', i) + 1; // a range or subquery duration
      assert.ok(i > 0, `unterminated [ in ${expr}`);
    } else if (/[0-9.]/.test(c)) {
      const m = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)?)((ms|[smhdwy])[0-9]*)*/.exec(src.slice(i));
      i += m ? m[0].length : 1;
    } else if (c === '{') {
      selectors.push({ metric: null, labels: readMatchers() });
    } else if (/[a-zA-Z_:]/.test(c)) {
      const word = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(src.slice(i))[0];
      i += word.length;
      skipSpace();
      if (LABEL_LISTS.has(word)) {
        if (src[i] === '(') {
          const end = src.indexOf(')', i);
          for (const l of src.slice(i + 1, end).split(',')) if (l.trim()) grouping.push(l.trim());
          i = end + 1;
        }
      } else if (FUNCTIONS.has(word) || KEYWORDS.has(word)) {
        // a call (its arguments are walked as they come) or an operator
      } else {
        assert.notEqual(src[i], '(', `unknown PromQL function ${word} in ${expr}`);
        selectors.push({ metric: word, labels: src[i] === '{' ? readMatchers() : [] });
      }
    } else {
      i++;
    }
  }
  return { selectors, grouping };
}

/** Problems of one expression against the exported families (empty: fine). */
function checkExpr(expr, families) {
  const problems = [];
  const { selectors, grouping } = parsePromql(expr);
  const known = new Set(TARGET_LABELS);
  if (!selectors.some((s) => s.metric)) problems.push(`no metric in ${expr}`);
  for (const { metric, labels } of selectors) {
    if (!metric) {
      problems.push(`selector without a metric name in ${expr}`);
      continue;
    }
    const have = families.get(metric) ?? FOREIGN[metric];
    if (!have) {
      problems.push(`${metric} is not exported by usersd (in ${expr})`);
      continue;
    }
    for (const l of have) known.add(l);
    for (const l of labels) {
      if (!have.has(l) && !TARGET_LABELS.has(l)) problems.push(`${metric} has no label ${l} (in ${expr})`);
    }
  }
  for (const l of grouping) if (!known.has(l)) problems.push(`label ${l} of a grouping is on none of the metrics of ${expr}`);
  return problems;
}

// ------------------------------------------------- the files under test

/** The `expr:` values of a Prometheus rules file (plain or `|` block scalars). */
function ruleExprs(text) {
  const out = [];
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[n]);
    if (!m) continue;
    if (m[2] !== '|' && m[2] !== '>') {
      out.push(m[2].replace(/^(['"])(.*)\1$/, '$2'));
      continue;
    }
    const body = [];
    while (n + 1 < lines.length && (lines[n + 1].trim() === '' || lines[n + 1].search(/\S/) > m[1].length)) body.push(lines[++n]);
    out.push(body.join('\n').trim().replace(/\\\\/g, '\\'));
  }
  return out;
}

/** Every PromQL expression of a Grafana dashboard: targets and template queries. */
function dashboardExprs(dash) {
  const out = [];
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'expr' && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  walk(dash.panels);
  for (const t of dash.templating?.list ?? []) {
    const q = typeof t.query === 'string' ? t.query : t.query?.query;
    const m = /^label_values\((.*),\s*([a-zA-Z_]+)\)$/.exec(q ?? '');
    if (t.type === 'query') {
      assert.ok(m, `template ${t.name}: unsupported query ${q}`);
      out.push(`${m[1]}`);
    }
  }
  return out;
}

describe('metrics named by contrib/prometheus and contrib/grafana', () => {
  const scope = suiteScope();
  let families;

  before(async () => {
    const fake = await withFake({ t: scope });
    const d = await startDaemon({
      fake,
      t: scope,
      configExtra: { workos: { events_poll_seconds: 1 }, log: { level: 'warn' } },
    });
    const app = await connect(d.socketPath, { t: scope });
    const admin = await connect(d.adminPath, { t: scope });
    // Requests of each kind, a refused token, an update that goes through the
    // outbox to WorkOS, and an admin request, so the labelled families exist.
    const user = await newUser(fake, app, { firstName: 'Grace' });
    ok(await app.request('user.update', { id: user.me.id, lastName: 'Hopper' }, { token: user.token }));
    await app.request('user.me', undefined, { token: 'not-a-jwt' });
    ok(await admin.request('admin.status'));
    families = await waitFor(async () => {
      const f = parseExposition(ok(await admin.request('admin.metrics')).text);
      const ready = ['usersd_outbox_sends_total', 'usersd_events_polls_total', 'usersd_token_failures_total'].every((n) => f.has(n));
      return ready && f;
    }, { what: 'outbox sends, events polls and token failures in admin.metrics', timeoutMs: 30000 });
  });

  test('the checker itself refuses unknown metrics and labels', () => {
    assert.deepEqual(checkExpr('sum by (method) (rate(usersd_requests_total{outcome="ok"}[5m]))', families), []);
    const refused = (expr, what) => {
      const problems = checkExpr(expr, families);
      assert.ok(problems.some((p) => p.includes(what)), `${expr}: ${JSON.stringify(problems)} lacks "${what}"`);
    };
    refused('rate(usersd_no_such_metric_total[5m])', 'usersd_no_such_metric_total is not exported');
    refused('usersd_dead_letters{reason="x"}', 'usersd_dead_letters has no label reason');
    refused('sum by (nosuchlabel) (usersd_users)', 'label nosuchlabel of a grouping');
    refused('histogram_quantile(0.99, sum by (le) (rate(usersd_request_duration_bucket[5m])))', 'usersd_request_duration_bucket is not');
    refused('up{job="node"} == 1 unless on (instance) usersd_build_infos', 'usersd_build_infos is not');
    refused('{__name__="usersd_users"}', 'selector without a metric name');
  });

  test('every alert rule expression names exported metrics and labels', () => {
    const exprs = ruleExprs(fs.readFileSync(RULES, 'utf8'));
    assert.ok(exprs.length >= 10, `only ${exprs.length} rule expressions found`);
    const problems = exprs.flatMap((e) => checkExpr(e, families));
    assert.deepEqual(problems, []);
  });

  test('every dashboard expression names exported metrics and labels', () => {
    const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
    assert.equal(dash.uid, 'usersd');
    const exprs = dashboardExprs(dash);
    assert.ok(exprs.length >= 30, `only ${exprs.length} dashboard expressions found`);
    const problems = exprs.flatMap((e) => checkExpr(e, families));
    assert.deepEqual(problems, []);
    // Panels must not overlap on Grafana's 24-column grid.
    const cells = new Set();
    for (const p of dash.panels) {
      const { x, y, w, h } = p.gridPos;
      assert.ok(x >= 0 && x + w <= 24, `panel ${p.title} outside the grid`);
      for (let r = y; r < y + h; r++) {
        for (let c = x; c < x + w; c++) {
          assert.ok(!cells.has(`${r},${c}`), `panel ${p.title} overlaps another`);
          cells.add(`${r},${c}`);
        }
      }
    }
  });

  test('the families the dashboard and rules are about are all exported', () => {
    // Guards the guard: if a family vanished from usersd, its expressions
    // above would fail; this names the ones the files are built around.
    for (const name of [
      'usersd_requests_total',
      'usersd_request_duration_seconds_bucket',
      'usersd_token_failures_total',
      'usersd_outbox_depth',
      'usersd_outbox_oldest_age_seconds',
      'usersd_dead_letters',
      'usersd_upstream_online',
      'usersd_store_used_bytes',
      'usersd_store_max_map_bytes',
      'usersd_events_last_success_timestamp_seconds',
    ]) {
      assert.ok(families.has(name), `usersd does not export ${name}`);
    }
  });
});

import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DEFAULT_METRICS_LEFT_OUT, defaultMetrics } from './metrics.ts';

describe('defaultMetrics', () => {
  it("registers prom-client's default process metrics but the per-collection GC observer", async () => {
    const ours = new Registry();
    expect(defaultMetrics(ours)).toEqual(collectDefaultMetrics.metricsList.filter((name) => !DEFAULT_METRICS_LEFT_OUT.has(name)));
    const all = new Registry();
    collectDefaultMetrics({ register: all });
    const names = async (r: Registry) => (await r.getMetricsAsJSON()).map((m) => m.name).sort();
    const everything = await names(all);
    expect(everything).toContain('nodejs_gc_duration_seconds');
    expect(await names(ours)).toEqual(everything.filter((name) => name !== 'nodejs_gc_duration_seconds'));
  });
});

import { describe, expect, it } from 'vitest';
import { TransferBudget } from './transfer-budget.ts';

const MiB = 1024 * 1024;

describe('TransferBudget', () => {
  it('divides the budget among the uploads, between floor and ceiling, and takes each share back once', () => {
    const budget = new TransferBudget(32 * MiB);
    expect(budget.share()).toBe(4 * MiB);
    const shares = Array.from({ length: 16 }, () => budget.enter());
    expect(shares[0]?.bytes).toBe(2 * MiB);
    const more = Array.from({ length: 100 }, () => budget.enter());
    expect(budget.uploads).toBe(116);
    expect(more[0]?.bytes).toBe(512 * 1024);
    for (const s of more) s.leave();
    for (const s of more) s.leave(); // twice: no effect
    expect(budget.uploads).toBe(16);
    for (const s of shares.slice(8)) s.leave();
    expect(shares[0]?.bytes).toBe(4 * MiB);
    expect(new TransferBudget(3 * MiB, 256 * 1024, 8 * MiB).enter().bytes).toBe(3 * MiB);
  });
});

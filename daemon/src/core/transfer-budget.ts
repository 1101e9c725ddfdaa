/**
 * Buffer memory shared by the uploads in progress, so that the daemon's memory stays bounded
 * however many sessions upload at once. Each upload may keep up to its share of plaintext
 * waiting for encryption — the SFTP session stops reading its connection beyond it, and the
 * encryption stage keeps at most half of it in flight to the worker thread. The share is the
 * whole budget divided by the uploads running, between a floor (one SFTP WRITE of 255 KiB and
 * the next must fit, or an upload would stall) and a ceiling (4 MiB: more does not make one
 * upload faster). Measured before the budget: each parallel SFTP upload added ~15 MB of RSS
 * (1, 8, 16 uploads: peaks 190, 316, 435 MB).
 */

const MiB = 1024 * 1024;

/** The share of one upload: `bytes` follows the number of uploads running. */
export interface BudgetShare {
  readonly bytes: number;
  /** Gives the share back (once; later calls do nothing). */
  leave(): void;
}

export class TransferBudget {
  private active = 0;

  constructor(
    readonly totalBytes: number,
    readonly minBytes = 512 * 1024,
    readonly maxBytes = 4 * MiB,
  ) {}

  /** Uploads holding a share. */
  get uploads(): number {
    return this.active;
  }

  /** Bytes one upload may buffer now. */
  share(): number {
    return Math.max(this.minBytes, Math.min(this.maxBytes, Math.floor(this.totalBytes / Math.max(1, this.active))));
  }

  /** Registers an upload. */
  enter(): BudgetShare {
    this.active++;
    return new Share(this, () => this.active--);
  }
}

class Share implements BudgetShare {
  private left = false;

  constructor(
    private readonly budget: TransferBudget,
    private readonly release: () => void,
  ) {}

  get bytes(): number {
    return this.budget.share();
  }

  leave(): void {
    if (this.left) return;
    this.left = true;
    this.release();
  }
}

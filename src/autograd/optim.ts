/**
 * Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019, decoupled weight decay) over a
 * list of parameter arrays, updated in place; moments in float64, one pair per parameter.
 */
import type { Arr } from './ops.js';

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** AdamW: θ −= lr·λ·θ each step, apart from the gradient; Adam: λθ added to the gradient. */
  weightDecay?: number;
}

export class Adam {
  protected t = 0;
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];
  protected readonly beta1: number;
  protected readonly beta2: number;
  protected readonly eps: number;
  protected readonly weightDecay: number;
  lr: number;

  constructor(
    protected readonly params: Arr[],
    opts: AdamOptions,
    private readonly decoupled = false,
  ) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
  }

  /** One update with grads[i] the gradient of params[i]. */
  step(grads: Arr[]): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps, lr, weightDecay: wd } = this;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    this.params.forEach((p, k) => {
      const g = grads[k]!;
      const m = this.m[k]!;
      const v = this.v[k]!;
      for (let i = 0; i < p.length; i++) {
        let gi = g[i]!;
        if (!this.decoupled && wd !== 0) gi += wd * p[i]!;
        m[i] = b1 * m[i]! + (1 - b1) * gi;
        v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
        const update = (m[i]! / c1) / (Math.sqrt(v[i]! / c2) + eps);
        p[i] = p[i]! - lr * update - (this.decoupled ? lr * wd * p[i]! : 0);
      }
    });
  }
}

export class AdamW extends Adam {
  constructor(params: Arr[], opts: AdamOptions) {
    super(params, opts, true);
  }
}

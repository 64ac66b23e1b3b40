// A small Prometheus registry: counters, gauges and histograms with fixed label names, rendered
// in text exposition format 0.0.4. No dependency, no timers, no I/O.
//
// Each metric keeps its series in nested Maps, one level per label name (in labelNames order), so
// an update finds its series without building a key (the data plane sets gauges on every change);
// rendering sorts metrics by name and series by label values, so output is deterministic.

/** Label values by label name. A metric's type parameter may narrow the values (`"ok" | "error"`). */
export type LabelSet = Readonly<Record<string, string>>;
export type NoLabels = Record<never, string>;

export interface MetricOptions<N extends string = never> {
  readonly name: string;
  readonly help: string;
  /** @default [] */
  readonly labelNames?: readonly N[];
}

export interface HistogramOptions<N extends string = never> extends MetricOptions<N> {
  /** Upper bounds, finite and strictly increasing; `+Inf` is always added. @default DEFAULT_BUCKETS */
  readonly buckets?: readonly number[];
}

/** The Prometheus client default, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** `(value?)` for a label-less metric, `(labels, value?)` otherwise. */
type Args<T extends LabelSet> = [keyof T] extends [never] ? [value?: number] : [labels: T, value?: number];
type SetArgs<T extends LabelSet> = [keyof T] extends [never] ? [value: number] : [labels: T, value: number];
type Series<S> = { readonly values: readonly string[]; readonly state: S };
/** One level per label name; the last level maps the last label's value to its series. */
type Level<S> = Map<string, Level<S> | Series<S>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

abstract class Metric<S> {
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Invariant: a series sits at the path of its values, and values has labelNames.length strings. */
  readonly #root: Level<S> = new Map();
  // The same series, in creation order (for render); a label-less metric's is at most one.
  #all: Series<S>[] = [];
  readonly #initial: () => S;

  constructor(options: MetricOptions<string>, initial: () => S, reserved: readonly string[] = []) {
    if (!METRIC_NAME.test(options.name)) throw new TypeError(`invalid metric name ${JSON.stringify(options.name)}`);
    const labelNames = options.labelNames ?? [];
    const bad = labelNames.find(
      (label, i) => !LABEL_NAME.test(label) || label.startsWith("__") || reserved.includes(label) || labelNames.indexOf(label) !== i,
    );
    if (bad !== undefined) throw new TypeError(`${options.name}: invalid or duplicate label name ${JSON.stringify(bad)}`);
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...labelNames];
    this.#initial = initial;
  }

  /** Drops every series; a label-less metric reads as its initial value again. */
  reset(): void {
    this.#root.clear();
    this.#all = [];
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}\n`;
    out += `# TYPE ${this.name} ${this.type}\n`;
    const series = [...this.#all].sort((a, b) => compareValues(a.values, b.values));
    if (series.length === 0 && this.labelNames.length === 0) series.push({ values: [], state: this.#initial() });
    for (const { values, state } of series) {
      const pairs = values.map((value, i) => `${this.labelNames[i]}="${escapeLabelValue(value)}"`);
      out += this.renderSeries(pairs, state);
    }
    return out;
  }

  protected abstract renderSeries(pairs: readonly string[], state: S): string;

  /** The series for these labels, created on first use. */
  protected series(labels: LabelSet | undefined): S {
    return this.#find(labels ?? {}, true)!.state;
  }

  protected peek(labels: LabelSet | undefined): S | undefined {
    return this.#find(labels ?? {}, false)?.state;
  }

  protected sample(suffix: string, pairs: readonly string[], value: number): string {
    return `${this.name}${suffix}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${formatNumber(value)}\n`;
  }

  /** The series at the path of the labels' values (built with `create`); every label checked first. */
  #find(given: LabelSet, create: boolean): Series<S> | undefined {
    const names = this.labelNames;
    for (const name in given) if (!names.includes(name)) throw new TypeError(`${this.name}: unknown label ${JSON.stringify(name)}`);
    for (const name of names) {
      if (typeof given[name] !== "string") throw new TypeError(`${this.name}: label ${name} must be a string, got ${typeof given[name]}`);
    }
    // A label-less metric's one series sits under "".
    const depth = Math.max(1, names.length);
    let level = this.#root;
    for (let i = 0; ; i++) {
      const value = names.length === 0 ? "" : given[names[i]!]!;
      const node = level.get(value);
      if (i === depth - 1) {
        if (node !== undefined || !create) return node as Series<S> | undefined;
        const series: Series<S> = { values: names.map((name) => given[name]!), state: this.#initial() };
        level.set(value, series);
        this.#all.push(series);
        return series;
      }
      let next = node as Level<S> | undefined;
      if (next === undefined) {
        if (!create) return undefined;
        level.set(value, (next = new Map()));
      }
      level = next;
    }
  }
}

/** The value of a counter or gauge series. */
abstract class Scalar<T extends LabelSet> extends Metric<{ value: number }> {
  constructor(options: MetricOptions<string>) {
    super(options, () => ({ value: 0 }));
  }

  get(labels?: T): number {
    return this.peek(labels)?.value ?? 0;
  }

  protected renderSeries(pairs: readonly string[], state: { value: number }): string {
    return this.sample("", pairs, state.value);
  }
}

export class Counter<T extends LabelSet = NoLabels> extends Scalar<T> {
  readonly type = "counter";

  inc(...args: Args<T>): void {
    const labels = labelsOf(args);
    const value = valueOf(this.name, args, 1);
    if (value < 0) throw new TypeError(`${this.name}: a counter only goes up, got ${value}`);
    this.series(labels).value += value;
  }
}

export class Gauge<T extends LabelSet = NoLabels> extends Scalar<T> {
  readonly type = "gauge";

  set(...args: SetArgs<T>): void {
    const labels = labelsOf(args);
    const value = valueOf(this.name, args);
    this.series(labels).value = value;
  }

  inc(...args: Args<T>): void {
    const labels = labelsOf(args);
    const value = valueOf(this.name, args, 1);
    this.series(labels).value += value;
  }

  dec(...args: Args<T>): void {
    const labels = labelsOf(args);
    const value = valueOf(this.name, args, 1);
    this.series(labels).value -= value;
  }
}

type HistogramState = { readonly counts: number[]; sum: number; count: number };

export class Histogram<T extends LabelSet = NoLabels> extends Metric<HistogramState> {
  readonly type = "histogram";
  readonly buckets: readonly number[];

  constructor(options: HistogramOptions<string>) {
    const buckets = [...(options.buckets ?? DEFAULT_BUCKETS)];
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new TypeError(`${options.name}: buckets must be finite and strictly increasing`);
    }
    super(options, () => ({ counts: new Array<number>(buckets.length).fill(0), sum: 0, count: 0 }), ["le"]);
    this.buckets = buckets;
  }

  observe(...args: SetArgs<T>): void {
    const labels = labelsOf(args);
    const value = valueOf(this.name, args);
    const state = this.series(labels);
    const bucket = this.buckets.findIndex((bound) => value <= bound);
    if (bucket >= 0) state.counts[bucket]! += 1; // beyond the last bound only +Inf counts it
    state.sum += value;
    state.count += 1;
  }

  get(labels?: T): { readonly sum: number; readonly count: number } {
    const state = this.peek(labels);
    return { sum: state?.sum ?? 0, count: state?.count ?? 0 };
  }

  protected renderSeries(pairs: readonly string[], state: HistogramState): string {
    let cumulative = 0;
    const bucket = (le: number, count: number) => this.sample("_bucket", [...pairs, `le="${formatNumber(le)}"`], count);
    return (
      this.buckets.map((bound, i) => bucket(bound, (cumulative += state.counts[i]!))).join("") +
      bucket(Infinity, state.count) +
      this.sample("_sum", pairs, state.sum) +
      this.sample("_count", pairs, state.count)
    );
  }
}

export class Registry {
  /** By metric name; names are unique. */
  readonly #metrics = new Map<string, Metric<unknown>>();
  readonly #collectors: (() => void)[] = [];

  counter<const N extends string = never>(options: MetricOptions<N>): Counter<Record<N, string>> {
    return this.#add(new Counter<Record<N, string>>(options));
  }

  gauge<const N extends string = never>(options: MetricOptions<N>): Gauge<Record<N, string>> {
    return this.#add(new Gauge<Record<N, string>>(options));
  }

  histogram<const N extends string = never>(options: HistogramOptions<N>): Histogram<Record<N, string>> {
    return this.#add(new Histogram<Record<N, string>>(options));
  }

  /**
   * `collect` runs before every render: it sets gauges whose values live elsewhere at scrape
   * time, instead of on every change that moves them.
   */
  onRender(collect: () => void): void {
    this.#collectors.push(collect);
  }

  /** Every metric, sorted by name, in text exposition format 0.0.4. */
  render(): string {
    for (const collect of this.#collectors) collect();
    return [...this.#metrics.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((metric) => metric.render())
      .join("");
  }

  #add<M extends Metric<unknown>>(metric: M): M {
    if (this.#metrics.has(metric.name)) throw new TypeError(`metric ${metric.name} is already registered`);
    this.#metrics.set(metric.name, metric);
    return metric;
  }
}

/** The labels of `(value?)` or `(labels, value?)`. No tuple built: metrics are updated on every change. */
function labelsOf<T extends LabelSet>(args: Args<T> | SetArgs<T>): T | undefined {
  return typeof args[0] === "object" ? (args[0] as T) : undefined;
}

/** The checked value of `(value?)` or `(labels, value?)`. */
function valueOf<T extends LabelSet>(name: string, args: Args<T> | SetArgs<T>, fallback?: number): number {
  const number: unknown = (typeof args[0] === "object" ? args[1] : args[0]) ?? fallback;
  if (typeof number !== "number" || Number.isNaN(number)) throw new TypeError(`${name}: expected a number, got ${String(number)}`);
  return number;
}

function formatNumber(value: number): string {
  return value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value);
}

function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function compareValues(a: readonly string[], b: readonly string[]): number {
  const i = a.findIndex((value, j) => value !== b[j]);
  return i < 0 ? 0 : a[i]! < b[i]! ? -1 : 1;
}

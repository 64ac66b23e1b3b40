// A latency CDF as one self-contained SVG: log-scale x axis in ms, y from 0 to 100 %, one
// polyline per series, a legend. No dependencies, no scripts, no external fonts.
//
//   100% ┤        ┌────────        each series: its samples sorted, the point (x_i, (i+1)/n)
//        │     ┌──┘                for every sample (thinned to ≤ MAX_POINTS per series, always
//     0% ┼─────┘                   keeping the first and last), drawn as a step line.
//        0.1 ms   1 ms   10 ms

export interface CdfSeries {
  readonly name: string;
  /** Latencies in ms; values ≤ 0 are drawn at the left edge. */
  readonly samples: readonly number[];
}

export interface CdfOptions {
  readonly title: string;
  readonly xLabel: string;
  /** @default 720 */
  readonly width?: number;
  /** @default 440 */
  readonly height?: number;
}

/** Distinct colours (Okabe–Ito, then Tableau); beyond them hues are spread on the wheel. */
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B", "#7F7F7F", "#BCBD22"];
const MAX_POINTS = 2000;
const MARGIN = { top: 40, right: 20, bottom: 50, left: 60 } as const;

export function seriesColour(i: number): string {
  return PALETTE[i] ?? `hsl(${Math.round((i * 137.508) % 360)}, 65%, 42%)`;
}

/** Escapes text for XML character data and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

export function cdfSvg(series: readonly CdfSeries[], options: CdfOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 440;
  const legendHeight = 18 * series.length + 8;
  const plot = { x: MARGIN.left, y: MARGIN.top, w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };
  const [lo, hi] = decades(series);
  const xOf = (ms: number): number => plot.x + ((Math.log10(Math.max(ms, 10 ** lo)) - lo) / (hi - lo)) * plot.w;
  const yOf = (fraction: number): number => plot.y + (1 - fraction) * plot.h;
  const n = (v: number): string => (Math.round(v * 10) / 10).toString();

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + legendHeight}" viewBox="0 0 ${width} ${height + legendHeight}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
  ];
  // Grid and ticks: y every 10 %, x at every decade with light minor lines at 2…9.
  out.push(`<g stroke="#e0e0e0" stroke-width="1">`);
  for (let pct = 0; pct <= 100; pct += 10) out.push(`<line x1="${plot.x}" y1="${n(yOf(pct / 100))}" x2="${plot.x + plot.w}" y2="${n(yOf(pct / 100))}"/>`);
  for (let d = lo; d <= hi; d++) {
    out.push(`<line x1="${n(xOf(10 ** d))}" y1="${plot.y}" x2="${n(xOf(10 ** d))}" y2="${plot.y + plot.h}" stroke="#c8c8c8"/>`);
    if (d < hi) for (let m = 2; m <= 9; m++) out.push(`<line x1="${n(xOf(m * 10 ** d))}" y1="${plot.y}" x2="${n(xOf(m * 10 ** d))}" y2="${plot.y + plot.h}" stroke="#f0f0f0"/>`);
  }
  out.push(`</g>`);
  out.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" fill="none" stroke="#333333"/>`);
  out.push(`<g text-anchor="end">`);
  for (let pct = 0; pct <= 100; pct += 20) out.push(`<text x="${plot.x - 6}" y="${n(yOf(pct / 100) + 4)}">${pct}%</text>`);
  out.push(`</g>`, `<g text-anchor="middle">`);
  for (let d = lo; d <= hi; d++) out.push(`<text x="${n(xOf(10 ** d))}" y="${plot.y + plot.h + 16}">${escapeXml(tickLabel(d))}</text>`);
  out.push(`</g>`);
  out.push(`<text x="${n(plot.x + plot.w / 2)}" y="${plot.y + plot.h + 38}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${n(plot.y + plot.h / 2)}) rotate(-90)" text-anchor="middle">cumulative share of samples</text>`);

  series.forEach((s, i) => {
    const sorted = Array.from(Float64Array.from(s.samples).sort());
    const points: string[] = [];
    const step = Math.max(1, Math.ceil(sorted.length / MAX_POINTS));
    let lastY = yOf(0);
    for (let k = 0; k < sorted.length; k += step) {
      const at = Math.min(sorted.length - 1, k + step - 1); // the last sample of this stride
      const x = n(xOf(sorted[at]!));
      points.push(`${x},${n(lastY)}`);
      lastY = yOf((at + 1) / sorted.length);
      points.push(`${x},${n(lastY)}`);
    }
    const colour = seriesColour(i);
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points.join(" ")}"/>`);
    const y = height + 10 + 18 * i;
    out.push(
      `<line x1="${plot.x}" y1="${y - 4}" x2="${plot.x + 24}" y2="${y - 4}" stroke="${colour}" stroke-width="3"/>`,
      `<text x="${plot.x + 30}" y="${y}">${escapeXml(`${s.name} (n=${sorted.length})`)}</text>`,
    );
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

/** The x range in whole powers of ten covering every positive sample (at least one decade). */
function decades(series: readonly CdfSeries[]): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const s of series) {
    for (const v of s.samples) {
      if (v > 0 && v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (!Number.isFinite(min) || !(max > 0)) return [-1, 2];
  const lo = Math.floor(Math.log10(min));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  return [lo, hi];
}

function tickLabel(decade: number): string {
  const ms = 10 ** decade;
  if (decade < 0) return `${Number(ms.toFixed(-decade))} ms`;
  if (decade < 3) return `${ms} ms`;
  return `${10 ** (decade - 3)} s`;
}
